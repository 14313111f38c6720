// Package kube is the Kubernetes provider: workers of each hardware class
// are the pods of one Deployment, and starting or stopping a worker is a
// change of that Deployment's replica count through the scale
// subresource — the same call `kubectl scale` and the HorizontalPodAutoscaler
// make. Pods are watched with an informer, not polled.
//
// A worker pod runs `infaas worker --id $(POD_NAME)`, so a worker's ID is its
// pod's name, and it joins the controller exactly as a local worker does;
// the provider only owns the pod count. Scale-in never lets Kubernetes pick
// the victim: Stop marks the chosen pod (already drained by the cluster
// autoscaler) with the lowest pod-deletion cost and only then lowers the
// replica count, so the ReplicaSet removes that pod and no busy one.
package kube

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/provider"
)

// Labels and annotations the provider reads and writes.
const (
	// ClassLabel on a worker pod names its hardware class.
	ClassLabel = "infaas.io/class"
	// DefaultSelector selects worker pods.
	DefaultSelector = "app.kubernetes.io/name=infaas,app.kubernetes.io/component=worker"
	// DefaultPrefix names a class's worker Deployment: infaas-worker-cpu-2.
	DefaultPrefix = "infaas-worker-"
	// DeletionCostAnnotation ranks pods for removal when a ReplicaSet
	// shrinks: lower goes first (Kubernetes ≥ 1.22).
	DeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"
	// DrainedAnnotation records which controller drained the pod and when.
	DrainedAnnotation = "infaas.io/drained"
)

// Stop's wait between seeing its deletion-cost patch on its own watch and
// lowering the replica count (see Stop).
const (
	settleFactor = 5
	minSettle    = 500 * time.Millisecond
	maxSettle    = 5 * time.Second
)

// drainedCost is the lowest deletion cost Kubernetes accepts.
var drainedCost = strconv.Itoa(math.MinInt32)

// Config configures the provider.
type Config struct {
	Client    kubernetes.Interface
	Namespace string
	// Deployments maps a class name to its worker Deployment; a class
	// absent here uses Prefix + class name.
	Deployments map[string]string
	Prefix      string // default DefaultPrefix
	Selector    string // worker pods; default DefaultSelector
	// StartTimeout bounds how long Start waits for the new pod to exist;
	// default 30 s. StopTimeout bounds how long Stop waits for the pod to
	// go; default 2 min.
	StartTimeout, StopTimeout time.Duration
	// Identity names this controller in the annotations it writes.
	Identity string
	Log      *slog.Logger
	// OnChange, when set, hears of every worker pod that appears, changes
	// phase, node or readiness, or goes ("appeared", "changed", "gone"),
	// once each; the controller records them in its event log.
	OnChange func(w provider.Worker, change string)
}

// Provider runs workers as pods of per-class Deployments.
type Provider struct {
	cfg      Config
	selector labels.Selector
	factory  informers.SharedInformerFactory
	pods     corelisters.PodNamespaceLister
	synced   cache.InformerSynced

	mu      sync.Mutex
	pending map[string]int      // class → scale-ups asked for whose pod is not seen yet
	seen    map[string]podState // pod → what was last logged about it
	change  chan struct{}       // closed and replaced on every pod event
}

type podState struct{ phase, detail string }

var _ provider.Provider = (*Provider)(nil)

// New checks cfg and returns a provider; it starts nothing (Run starts the
// pod watch).
func New(cfg Config) (*Provider, error) {
	if cfg.Client == nil || cfg.Namespace == "" {
		return nil, errors.New("kubernetes provider: a client and a namespace are required")
	}
	cfg.Prefix = cmp.Or(cfg.Prefix, DefaultPrefix)
	cfg.Selector = cmp.Or(cfg.Selector, DefaultSelector)
	cfg.StartTimeout = cmp.Or(cfg.StartTimeout, 30*time.Second)
	cfg.StopTimeout = cmp.Or(cfg.StopTimeout, 2*time.Minute)
	cfg.Identity = cmp.Or(cfg.Identity, "infaas")
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	sel, err := labels.Parse(cfg.Selector)
	if err != nil {
		return nil, fmt.Errorf("kubernetes provider: worker selector %q: %w", cfg.Selector, err)
	}
	p := &Provider{cfg: cfg, selector: sel, pending: map[string]int{}, seen: map[string]podState{}, change: make(chan struct{})}
	p.factory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithNamespace(cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = cfg.Selector }))
	inf := p.factory.Core().V1().Pods()
	p.pods = inf.Lister().Pods(cfg.Namespace)
	p.synced = inf.Informer().HasSynced
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { p.observe(o, false) },
		UpdateFunc: func(_, o any) { p.observe(o, false) },
		DeleteFunc: func(o any) { p.observe(o, true) },
	}); err != nil {
		return nil, err
	}
	return p, nil
}

// Name is "kubernetes".
func (p *Provider) Name() string { return "kubernetes" }

// Deployment is the worker Deployment of class.
func (p *Provider) Deployment(class string) string {
	if d, ok := p.cfg.Deployments[class]; ok {
		return d
	}
	return p.cfg.Prefix + class
}

// Run watches the worker pods until ctx ends. Unlike the local provider it
// stops nothing on the way out: the pods belong to their Deployments and
// outlive this controller (another one takes over).
func (p *Provider) Run(ctx context.Context) error {
	p.factory.Start(ctx.Done())
	defer p.factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), p.synced) {
		return ctx.Err()
	}
	p.cfg.Log.Info("watching worker pods", "namespace", p.cfg.Namespace, "selector", p.cfg.Selector)
	<-ctx.Done()
	return nil
}

// waitSynced waits until the pod watch has listed once.
func (p *Provider) waitSynced(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.StartTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), p.synced) {
		return errors.New("kubernetes provider: the pod watch has not listed the worker pods yet (is the API server reachable?)")
	}
	return nil
}

// Start adds one pod to class's worker Deployment and returns once the
// new pod exists (it joins the controller when its container runs).
func (p *Provider) Start(ctx context.Context, class catalog.HardwareClass) (provider.Worker, error) {
	if err := p.waitSynced(ctx); err != nil {
		return provider.Worker{}, err
	}
	dep := p.Deployment(class.Name)
	before := map[string]bool{}
	for _, w := range p.List() {
		before[w.ID] = true
	}
	p.mu.Lock()
	p.pending[class.Name]++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.pending[class.Name]--
		p.mu.Unlock()
	}()
	var want int32
	err := p.scale(ctx, dep, func(n int32) int32 { want = n + 1; return want })
	if err != nil {
		if apierrors.IsNotFound(err) {
			return provider.Worker{}, fmt.Errorf("%w: no worker Deployment %s for class %s in namespace %s (create it, e.g. from deploy/base/worker-cpu-2.yaml, or map the class with --kube-workers)",
				provider.ErrCapacity, dep, class.Name, p.cfg.Namespace)
		}
		if apierrors.IsForbidden(err) {
			return provider.Worker{}, fmt.Errorf("%w: this controller may not scale %s for class %s (add it to the resourceNames of the Role's deployments/scale rule): %v",
				provider.ErrCapacity, dep, class.Name, err)
		}
		return provider.Worker{}, fmt.Errorf("scale %s up: %w", dep, err)
	}
	p.cfg.Log.Info("scaled worker deployment up", "deployment", dep, "class", class.Name, "replicas", want)
	ctx, cancel := context.WithTimeout(ctx, p.cfg.StartTimeout)
	defer cancel()
	for {
		ch := p.changed()
		for _, w := range p.List() {
			if w.Class == class.Name && !before[w.ID] && w.State == provider.StateRunning && !strings.HasPrefix(w.ID, pendingPrefix) {
				return w, nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return provider.Worker{}, fmt.Errorf("%s scaled to %d, but no new pod appeared within %s (see `kubectl describe deployment %s`)",
				dep, want, p.cfg.StartTimeout, dep)
		}
	}
}

// Stop removes worker (pod) id: it gives the pod the lowest deletion cost,
// then lowers its Deployment's replicas by one, and waits until the pod is
// gone. The cluster autoscaler drains a worker before it stops it.
//
// The ReplicaSet controller ranks pods by the annotation only once its own
// informer has the patched pod, and Stop cannot see that informer: it sees
// its own, a peer on the same API server. So after its own has the patch,
// Stop waits settleFactor times as long again (at least minSettle, at most
// maxSettle) before lowering the count: when the machine is slow, both
// watches are. (Lowering the count sooner let Kubernetes remove another
// pod under a loaded test run: provider/kube TestProvider.)
func (p *Provider) Stop(ctx context.Context, id string) error {
	if err := p.waitSynced(ctx); err != nil {
		return err
	}
	pod, err := p.pods.Get(id)
	if err != nil {
		return fmt.Errorf("%w: %s (no such worker pod in namespace %s)", provider.ErrUnknownWorker, id, p.cfg.Namespace)
	}
	dep, err := p.deploymentOf(pod)
	if err != nil {
		return err
	}
	patched := time.Now()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q,%q:%q}}}`, DeletionCostAnnotation, drainedCost,
		DrainedAnnotation, p.cfg.Identity+" at "+patched.UTC().Format(time.RFC3339))
	if _, err := p.cfg.Client.CoreV1().Pods(p.cfg.Namespace).Patch(ctx, id, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // gone already
		}
		return fmt.Errorf("mark pod %s for removal: %w", id, err)
	}
	// The ReplicaSet ranks pods by the annotation only once its informer
	// has the patched pod; wait until ours has it too, which comes from the
	// same watch stream, before lowering the count.
	if err := p.until(ctx, 10*time.Second, func() bool {
		q, err := p.pods.Get(id)
		return err != nil || q.Annotations[DeletionCostAnnotation] == drainedCost
	}); err != nil {
		return fmt.Errorf("pod %s: the deletion-cost annotation did not come back on the watch: %w", id, err)
	}
	settle := min(max(settleFactor*time.Since(patched), minSettle), maxSettle)
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return ctx.Err()
	}
	if _, err := p.pods.Get(id); err != nil {
		return nil // gone meanwhile (crashed, evicted): lowering replicas now would remove another pod
	}
	var want int32
	if err := p.scale(ctx, dep, func(n int32) int32 { want = max(n-1, 0); return want }); err != nil {
		return fmt.Errorf("scale %s down: %w", dep, err)
	}
	p.cfg.Log.Info("scaled worker deployment down", "deployment", dep, "worker", id, "replicas", want)
	err = p.until(ctx, p.cfg.StopTimeout, func() bool {
		q, err := p.pods.Get(id)
		return err != nil || q.DeletionTimestamp != nil
	})
	if err != nil {
		return fmt.Errorf("%s scaled to %d, but pod %s was not removed within %s: Kubernetes may have removed another pod (`kubectl get pods -l %s`)",
			dep, want, id, p.cfg.StopTimeout, p.cfg.Selector)
	}
	return nil
}

// until waits, on pod events, until ok holds.
func (p *Provider) until(ctx context.Context, limit time.Duration, ok func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		ch := p.changed()
		if ok() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// deploymentOf is the worker Deployment a pod belongs to, by its class.
func (p *Provider) deploymentOf(pod *corev1.Pod) (string, error) {
	class := pod.Labels[ClassLabel]
	if class == "" {
		return "", fmt.Errorf("pod %s has no %s label: infaas cannot tell which Deployment owns it", pod.Name, ClassLabel)
	}
	return p.Deployment(class), nil
}

// scale sets dep's replicas to next(current) through the scale
// subresource, retrying on a conflicting write.
func (p *Provider) scale(ctx context.Context, dep string, next func(int32) int32) error {
	deps := p.cfg.Client.AppsV1().Deployments(p.cfg.Namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := deps.GetScale(ctx, dep, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = next(s.Spec.Replicas)
		_, err = deps.UpdateScale(ctx, dep, s, metav1.UpdateOptions{})
		return err
	})
}

// pendingPrefix starts the IDs List gives scale-ups whose pod is not seen yet.
const pendingPrefix = "pending:"

// List returns the worker pods, by name: pods that are scheduled or
// running are "running" (they count as starting until they join), pods
// being deleted "stopped", pods that ended "exited". A scale-up whose pod
// has not appeared yet is listed as running under a "pending:" ID, so the
// cluster autoscaler counts it as starting.
func (p *Provider) List() []provider.Worker {
	pods, err := p.pods.List(p.selector)
	if err != nil {
		return nil
	}
	out := make([]provider.Worker, 0, len(pods))
	for _, pod := range pods {
		out = append(out, workerOf(pod))
	}
	p.mu.Lock()
	for class, n := range p.pending {
		for i := range n {
			out = append(out, provider.Worker{ID: fmt.Sprintf("%s%s-%d", pendingPrefix, class, i), Class: class, State: provider.StateRunning,
				Detail: "scale-up asked for; pod not created yet"})
		}
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b provider.Worker) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// workerOf is the provider's view of a pod.
func workerOf(pod *corev1.Pod) provider.Worker {
	w := provider.Worker{ID: pod.Name, Class: pod.Labels[ClassLabel], State: provider.StateRunning, Started: pod.CreationTimestamp.Time}
	switch {
	case pod.DeletionTimestamp != nil:
		w.State, w.Detail = provider.StateStopped, "being deleted"
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		w.State, w.Exit = provider.StateExited, string(pod.Status.Phase)+" "+pod.Status.Reason
	default:
		w.Detail = podDetail(pod)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		w.Restarts += int(cs.RestartCount)
	}
	return w
}

// podDetail says where a live pod stands: its phase and node, whether it is
// ready, and why it is not scheduled when it is not.
func podDetail(pod *corev1.Pod) string {
	var parts []string
	parts = append(parts, string(cmp.Or(pod.Status.Phase, corev1.PodPending)))
	if pod.Spec.NodeName != "" {
		parts = append(parts, "on "+pod.Spec.NodeName)
	}
	for _, c := range pod.Status.Conditions {
		switch {
		case c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse:
			parts = append(parts, "unscheduled: "+cmp.Or(c.Message, c.Reason))
		case c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue:
			parts = append(parts, "ready")
		}
	}
	return strings.Join(parts, ", ")
}

// changed returns a channel closed at the next pod event.
func (p *Provider) changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.change
}

// observe wakes the waiters and logs a pod's arrival, progress and
// departure once each.
func (p *Provider) observe(o any, deleted bool) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	w := workerOf(pod)
	p.mu.Lock()
	close(p.change)
	p.change = make(chan struct{})
	old, had := p.seen[pod.Name]
	now := podState{phase: w.State, detail: w.Detail}
	if deleted {
		delete(p.seen, pod.Name)
	} else {
		p.seen[pod.Name] = now
	}
	p.mu.Unlock()
	change := ""
	switch {
	case deleted:
		change = "gone"
		p.cfg.Log.Info("worker pod gone", "pod", pod.Name, "class", w.Class)
	case !had:
		change = "appeared"
		p.cfg.Log.Info("worker pod appeared", "pod", pod.Name, "class", w.Class, "status", w.Detail)
	case old != now:
		change = "changed"
		p.cfg.Log.Info("worker pod changed", "pod", pod.Name, "class", w.Class, "state", w.State, "status", cmp.Or(w.Detail, w.Exit))
	}
	if change != "" && p.cfg.OnChange != nil {
		p.cfg.OnChange(w, change)
	}
}
