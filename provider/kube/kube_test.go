package kube_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/internal/kubelocal"
	"github.com/infaas/infaas/provider"
	"github.com/infaas/infaas/provider/kube"
)

const ns = "default"

// cs is the client of the control plane the tests share (TestMain).
var cs kubernetes.Interface

// TestMain starts one real control plane (KWOK nodes make pods Running)
// for the package's tests; a missing build fails, never skips.
func TestMain(m *testing.M) {
	os.Exit(func() int {
		bin, err := kubelocal.BinDir()
		if err != nil {
			fmt.Fprintln(os.Stderr, err) // `make test` builds the control plane first
			return 1
		}
		dir, err := os.MkdirTemp("", "kube-provider-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cl, err := kubelocal.Start(c, kubelocal.Options{Bin: bin, Dir: dir, Log: os.Stderr})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer cl.Stop()
		rc, err := clientcmd.BuildConfigFromFlags("", cl.Kubeconfig)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		cs = kubernetes.NewForConfigOrDie(rc)
		return m.Run()
	}())
}

// workerDeployment creates the worker Deployment of class with n pods.
func workerDeployment(t *testing.T, class string, n int32) {
	t.Helper()
	labels := map[string]string{"app.kubernetes.io/name": "infaas", "app.kubernetes.io/component": "worker", kube.ClassLabel: class}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: kube.DefaultPrefix + class},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "worker", Image: "example.invalid/infaas:test"}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(t.Context(), dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func ids(ws []provider.Worker) []string {
	var out []string
	for _, w := range ws {
		if w.State == provider.StateRunning {
			out = append(out, w.ID)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProvider drives the provider against a real API server: Start adds a
// pod and names it; Stop removes exactly the pod it is given, never another
// (three pods, each of them removed in turn from the middle); unknown
// classes and pods are refused with the provider's errors.
func TestProvider(t *testing.T) {
	workerDeployment(t, "cpu-2", 1)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := kube.New(kube.Config{Client: cs, Namespace: ns, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "the first pod listed", func() bool { return len(ids(p.List())) == 1 })
	first := ids(p.List())[0]
	cpu2 := catalog.CPUClass(2)
	var started []string
	for range 2 {
		w, err := p.Start(t.Context(), cpu2)
		if err != nil {
			t.Fatal(err)
		}
		if w.Class != "cpu-2" || w.ID == first || slices.Contains(started, w.ID) || w.State != provider.StateRunning {
			t.Fatalf("Start returned %+v; want a new cpu-2 pod", w)
		}
		started = append(started, w.ID)
	}
	want := append([]string{first}, started...)
	slices.Sort(want)
	waitFor(t, "three pods listed", func() bool { return slices.Equal(ids(p.List()), want) })

	// Remove the middle-aged pod, then the oldest: the ReplicaSet's own
	// choice would be the newest (and later the unready), so only the
	// deletion cost makes these the ones that go.
	for _, victim := range []string{started[0], first} {
		if err := p.Stop(t.Context(), victim); err != nil {
			t.Fatalf("Stop(%s): %v", victim, err)
		}
		want = slices.DeleteFunc(want, func(id string) bool { return id == victim })
		waitFor(t, "the stopped pod gone", func() bool { return slices.Equal(ids(p.List()), want) })
	}
	s, err := cs.AppsV1().Deployments(ns).GetScale(t.Context(), kube.DefaultPrefix+"cpu-2", metav1.GetOptions{})
	if err != nil || s.Spec.Replicas != 1 {
		t.Fatalf("replicas after two stops: %+v, %v; want 1", s.Spec, err)
	}

	if _, err := p.Start(t.Context(), catalog.CPUClass(4)); !errors.Is(err, provider.ErrCapacity) {
		t.Errorf("Start(cpu-4) without its Deployment: %v; want ErrCapacity", err)
	}
	if err := p.Stop(t.Context(), "no-such-pod"); !errors.Is(err, provider.ErrUnknownWorker) {
		t.Errorf("Stop(no-such-pod): %v; want ErrUnknownWorker", err)
	}
}

// TestElection: of two controllers exactly one leads; when it stops, the
// other takes over.
func TestElection(t *testing.T) {
	type member struct {
		e      *kube.Elector
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func(id string) member {
		ctx, cancel := context.WithCancel(t.Context())
		m := member{e: &kube.Elector{Client: cs, Namespace: ns, Lease: "infaas-autoscaler", Identity: id}, cancel: cancel, done: make(chan struct{})}
		go func() { defer close(m.done); _ = m.e.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-m.done })
		return m
	}
	a, b := start("a"), start("b")
	waitFor(t, "a leader", func() bool { return a.e.Leading() || b.e.Leading() })
	time.Sleep(3 * time.Second) // a renewal or two: still one leader
	if a.e.Leading() == b.e.Leading() {
		t.Fatalf("a leading %v, b leading %v; want exactly one", a.e.Leading(), b.e.Leading())
	}
	leader, other := a, b
	if b.e.Leading() {
		leader, other = b, a
	}
	leader.cancel()
	<-leader.done
	if leader.e.Leading() {
		t.Error("a stopped elector still says it leads")
	}
	waitFor(t, "the other takes over", other.e.Leading)
}
