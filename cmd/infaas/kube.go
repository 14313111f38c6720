package main

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/controller"
	"github.com/infaas/infaas/events"
	"github.com/infaas/infaas/provider"
	"github.com/infaas/infaas/provider/kube"
)

// kubeConfig is the controller's Kubernetes provider configuration.
type kubeConfig struct {
	Kubeconfig string // empty: in-cluster (the pod's ServiceAccount)
	Namespace  string // empty: the pod's namespace, else "default"
	Workers    string // class=deployment,... (default: infaas-worker-<class>)
	Lease      string // the autoscaling leader's Lease; empty: no election
}

// serviceAccountNamespace is where a pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// newKube connects to the API server and makes the provider and the
// autoscaling election.
func newKube(kc kubeConfig, classes []catalog.HardwareClass, id string, log *slog.Logger, onChange func(provider.Worker, string)) (*kube.Provider, *kube.Elector, error) {
	var rc *rest.Config
	var err error
	if kc.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", kc.Kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
		if errors.Is(err, rest.ErrNotInCluster) {
			err = errors.New("not running in a pod: give --kubeconfig FILE to reach the API server from outside the cluster")
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes provider: %w", err)
	}
	rc.UserAgent = "infaas-controller/" + id
	// client-go logs through klog; send that to this process's log.
	klog.SetSlogLogger(log.With("component", "client-go"))
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes provider: %w", err)
	}
	ns := kc.Namespace
	if ns == "" {
		if b, err := os.ReadFile(serviceAccountNamespace); err == nil {
			ns = strings.TrimSpace(string(b))
		}
	}
	if ns == "" {
		ns = "default"
	}
	deps := map[string]string{}
	if kc.Workers != "" {
		for _, kv := range strings.Split(kc.Workers, ",") {
			class, dep, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok || class == "" || dep == "" {
				return nil, nil, fmt.Errorf("--kube-workers %q: want class=deployment,...", kc.Workers)
			}
			if _, ok := catalog.FindClass(classes, class); !ok {
				return nil, nil, fmt.Errorf("--kube-workers: class %q is not in the hardware catalogue (%s)", class, strings.Join(catalog.ClassNames(classes), ", "))
			}
			deps[class] = dep
		}
	}
	prov, err := kube.New(kube.Config{Client: cs, Namespace: ns, Deployments: deps, Identity: id, Log: log.With("component", "provider"), OnChange: onChange})
	if err != nil {
		return nil, nil, err
	}
	var el *kube.Elector
	if kc.Lease != "" {
		el = &kube.Elector{Client: cs, Namespace: ns, Lease: kc.Lease, Identity: id, Log: log.With("component", "election")}
	}
	return prov, el, nil
}

// podEvents records the worker pods' comings and goings in the event log
// of the controller *ctrl points to (set once it exists), beside the
// autoscalers' decisions that caused them.
func podEvents(ctrl **controller.Controller) func(provider.Worker, string) {
	return func(w provider.Worker, change string) {
		c := *ctrl
		if c == nil {
			return
		}
		msg := fmt.Sprintf("worker pod %s %s", w.ID, change)
		if d := cmp.Or(w.Detail, w.Exit); d != "" && change != "gone" {
			msg += ": " + d
		}
		c.Events().Append(events.Event{Source: "kubernetes", Action: "pod-" + change, Reason: w.State, Message: msg, Worker: w.ID, Class: w.Class})
	}
}
