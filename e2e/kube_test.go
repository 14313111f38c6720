package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/events"
	"github.com/infaas/infaas/internal/kubelocal"
	"github.com/infaas/infaas/internal/testredis"
	"github.com/infaas/infaas/loadgen"
	"github.com/infaas/infaas/onnx/onnxtest"
	"github.com/infaas/infaas/provider/kube"
)

// kubeNS is the namespace deploy/base puts everything in.
const kubeNS = "infaas"

// kubelet is a test-only stand-in for the kubelet of KWOK's fake nodes:
// for every worker pod KWOK marks Running it starts a real `infaas worker`
// named after the pod (as the manifest's --id $(POD_NAME) does), and it
// stops that process — SIGTERM, as a kubelet would — when the pod is being
// deleted or gone. Everything else in the manifests (the controller and
// Redis pods) stays an API object.
type kubelet struct {
	t    *testing.T
	args func(pod *corev1.Pod) []string

	mu      sync.Mutex
	procs   map[string]*proc
	started []string // pod names, in start order
	stopped []string
}

func (k *kubelet) run(ctx context.Context, cs kubernetes.Interface) {
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(kubeNS),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = kube.DefaultSelector }))
	inf := f.Core().V1().Pods().Informer()
	onPod := func(o any) {
		if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		if pod, ok := o.(*corev1.Pod); ok {
			k.sync(pod, false)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onPod,
		UpdateFunc: func(_, o any) { onPod(o) },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if pod, ok := o.(*corev1.Pod); ok {
				k.sync(pod, true)
			}
		},
	})
	f.Start(ctx.Done())
	k.t.Cleanup(f.Shutdown)
}

func (k *kubelet) sync(pod *corev1.Pod, gone bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p, running := k.procs[pod.Name]
	switch {
	case !running && !gone && pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning:
		k.procs[pod.Name] = startProc(k.t, pod.Name, k.args(pod)...)
		k.started = append(k.started, pod.Name)
	case running && (gone || pod.DeletionTimestamp != nil):
		delete(k.procs, pod.Name)
		k.stopped = append(k.stopped, pod.Name)
		go p.term(10 * time.Second)
	}
}

// state returns the pods with a worker process, and the pods whose
// process was stopped, in order.
func (k *kubelet) state() (running, stopped []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for name := range k.procs {
		running = append(running, name)
	}
	slices.Sort(running)
	return running, slices.Clone(k.stopped)
}

// term stops the process with SIGTERM, then SIGKILL after grace.
func (p *proc) term(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill()
	}
}

// kubeconfigFor writes a kubeconfig that authenticates with token.
func kubeconfigFor(t *testing.T, server, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: infaas-controller
  user: {token: %q}
contexts:
- name: local
  context: {cluster: local, user: infaas-controller, namespace: %s}
current-context: local
`, server, token, kubeNS)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// workerPods lists the worker pods not being deleted, by name.
func workerPods(t *testing.T, cs kubernetes.Interface) []string {
	t.Helper()
	pods, err := cs.CoreV1().Pods(kubeNS).List(ctx(t), metav1.ListOptions{LabelSelector: kube.DefaultSelector})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p.Name)
		}
	}
	slices.Sort(out)
	return out
}

func replicasOf(t *testing.T, cs kubernetes.Interface, dep string) int32 {
	t.Helper()
	s, err := cs.AppsV1().Deployments(kubeNS).GetScale(ctx(t), dep, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s.Spec.Replicas
}

// TestKubernetes runs infaas on a real Kubernetes control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler; KWOK's fake
// nodes, with the kubelet stand-in above starting real workers): the
// manifests pass the API server's dry run and apply; a controller on the
// host, with only the manifests' RBAC, scales the worker Deployment from 1
// to 3 under load and back to 1 after it through the scale subresource,
// removing the pods it drained and losing no query; a worker pod deleted
// under load is replaced and traffic recovers.
func TestKubernetes(t *testing.T) {
	root := onnxtest.RepoRoot(t)
	bin, err := kubelocal.BinDir()
	if err != nil {
		t.Fatal(err) // never a skip: `make test` builds the control plane first
	}
	c, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	start := time.Now()
	cl, err := kubelocal.Start(c, kubelocal.Options{Bin: bin, Dir: t.TempDir(), Nodes: []kubelocal.Node{
		{Name: "kwok-cpu-0", Labels: map[string]string{"infaas.io/hardware": "cpu"}},
		{Name: "kwok-cpu-1", Labels: map[string]string{"infaas.io/hardware": "cpu"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Stop)
	t.Logf("control plane up in %s", time.Since(start).Round(time.Millisecond))
	kubectl := func(args ...string) string {
		t.Helper()
		out, err := cl.Kubectl(c, args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}

	// The manifests are valid for the API server (admission, schemas,
	// RBAC objects) — the base as a cluster operator applies it, and the
	// GPU overlay — then the test overlay is applied for real.
	if err := cl.CreateNamespace(c, kubeNS); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"deploy", "deploy/overlays/gpu"} {
		out := kubectl("apply", "--dry-run=server", "-k", filepath.Join(root, dir))
		t.Logf("dry run of %s:\n%s", dir, out)
	}
	kubectl("apply", "-k", filepath.Join(root, "deploy/overlays/kwok"))

	// The controller's ServiceAccount may follow pods and scale its own
	// worker Deployment, and nothing more: no pod deletion, no other
	// Deployment, no change to the worker Deployment itself, no Secrets.
	sa := "system:serviceaccount:" + kubeNS + ":infaas-controller"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"watch", "pods"}, "yes"},
		{[]string{"patch", "pods"}, "yes"}, // the pod-deletion-cost annotation
		{[]string{"update", "deployments.apps/infaas-worker-cpu-2", "--subresource=scale"}, "yes"},
		{[]string{"update", "leases.coordination.k8s.io/infaas-autoscaler"}, "yes"},
		{[]string{"delete", "pods"}, "no"},
		{[]string{"create", "pods"}, "no"},
		{[]string{"update", "deployments.apps/infaas-controller", "--subresource=scale"}, "no"},
		{[]string{"update", "deployments.apps/infaas-worker-cpu-2"}, "no"},
		{[]string{"get", "secrets"}, "no"},
		{[]string{"update", "leases.coordination.k8s.io/another-lease"}, "no"},
	} {
		out, _ := cl.Kubectl(c, append([]string{"auth", "can-i", "--as", sa, "-n", kubeNS}, tc.args...)...)
		lines := strings.Fields(string(out))
		if len(lines) == 0 || lines[0] != tc.want {
			t.Errorf("can the controller %s? %q, want %s", strings.Join(tc.args, " "), out, tc.want)
		}
	}

	rc, err := clientcmd.BuildConfigFromFlags("", cl.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(rc)

	// The controller runs on the host with the manifests' ServiceAccount:
	// whatever the RBAC forgot, this run cannot do.
	token := strings.TrimSpace(kubectl("create", "token", "infaas-controller", "-n", kubeNS, "--duration", "1h"))
	redis := testredis.Start(t)
	dir := t.TempDir()
	repo := filepath.Join(dir, "models")
	// Two controllers, as the manifests run them: both serve, both watch
	// the pods, only the holder of the infaas-autoscaler Lease scales.
	// Low thresholds (scale up past 30 % busy, aim at 20 %) let a load
	// this 2-core machine serves with ease want three replicas.
	kubeFlags := []string{"--provider", "kubernetes", "--kubeconfig", kubeconfigFor(t, cl.Server, token),
		"--kube-namespace", kubeNS, "--autoscale", "--max-workers", "3", "--min-workers", "1",
		"--worker-idle", "3s", "--worker-interval", "1s", "--scale-up-window", "1s", "--scale-down-window", "3s",
		"--scale-cooldown", "2s", "--idle-unload", "-1s", "--scale-up-at", "0.3", "--scale-target", "0.2", "--scale-down-at", "0.1",
		"--log-level", "debug"}
	metrics, metricsB := freeAddr(t), freeAddr(t)
	ctrl := startController(t, "ctrl-k8s-a", dir, redis, append(kubeFlags, "--metrics", metrics)...)
	ctrlB := startController(t, "ctrl-k8s-b", dir, redis, append(kubeFlags, "--metrics", metricsB)...)

	// The model first, so a worker's memory can hold exactly one replica
	// of the variant the load pins: each added replica then needs a worker.
	s := &server{t: t, addr: ctrl.http, metrics: metrics, c: ctrl.c, log: ctrl.log}
	sB := &server{t: t, addr: ctrlB.http, metrics: metricsB, c: ctrlB.c, log: ctrlB.log}
	registerConvNetOn(t, s, "convnet", "cpu-2")
	variant := pinnedVariantOn(t, s, "convnet", "cpu-2")
	v := variantOf(t, s, "convnet", variant)
	prof, _ := v.ProfileOn("cpu-2")
	capacity, p99, need := prof.ThroughputQPS, prof.P99At(1), v.MemoryNeedOn("cpu-2")
	memory := need * 3 / 2
	t.Logf("pinned variant %s: %.0f/s per replica, p99 %.1f ms at batch 1, needs %d bytes on cpu-2; workers get %d",
		variant, capacity, p99, need, memory)

	kl := &kubelet{t: t, procs: map[string]*proc{}, args: func(pod *corev1.Pod) []string {
		return []string{"worker", "--id", pod.Name, "--class", pod.Labels[kube.ClassLabel], "--controller", ctrl.cluster + "," + ctrlB.cluster,
			"--repository", repo, "--memory", strconv.FormatInt(memory, 10), "--profile-time", "40ms"}
	}}
	kl.run(c, cs)
	const dep = "infaas-worker-cpu-2"
	var first []string
	waitFor(t, "the worker Deployment's pod joined both controllers", time.Minute, func() bool {
		first = workerPods(t, cs)
		return len(first) == 1 && slices.Equal(ctrl.running(), first) && slices.Equal(ctrlB.running(), first)
	}, ctrl.proc, ctrlB.proc)
	t.Logf("worker pod %s joined", first[0])

	// Scale out under load: the pinned variant (no vertical switch) at
	// half of one replica's profiled capacity wants three replicas (the
	// autoscaler aims at 20 % busy here), one per worker. The load is
	// split between the controllers, as their Service would split it.
	rate := 0.5 * capacity
	target := max(80, 20*p99)
	began := time.Now()
	var most []string
	sums := runSplit(t, []*server{s, sB}, fmt.Sprintf("steps:%.0f@35s", rate/2), loadgen.RequirementSet{Model: variant, LatencyMs: target}, func(loadgen.Row) {
		if ids := ctrl.running(); len(ids) > len(most) {
			most = ids
		}
	})
	for i, sum := range sums {
		if sum.Failed > 0 || sum.Dropped > 0 {
			t.Errorf("scale-out lost queries through controller %d: %d failed, %d dropped of %d sent (%v)", i, sum.Failed, sum.Dropped, sum.Sent, sum.Statuses)
		}
	}
	// Exactly one controller scaled: the Lease holder.
	scaled := func(srv *server) int {
		n := 0
		for _, e := range eventsOf(t, srv) {
			if e.Source == "cluster-autoscaler" || e.Source == "model-autoscaler" {
				n++
			}
		}
		return n
	}
	leader, na, nb := s, scaled(s), scaled(sB)
	if nb > 0 {
		leader = sB
	}
	if (na > 0) == (nb > 0) {
		t.Errorf("autoscaler events: %d at controller a, %d at b; want them at exactly one (the Lease holder)", na, nb)
	}
	es := eventsOf(t, leader)
	logEvents(t, es)
	var adds []events.Event
	for _, e := range es {
		if e.Source == "cluster-autoscaler" && e.Action == "add-worker" && !e.Time.Before(began) {
			adds = append(adds, e)
		}
	}
	if len(most) != 3 || len(adds) < 2 {
		t.Fatalf("want 3 workers under load through 2 add-worker decisions; saw at most %v, adds %v\n%s", most, adds, tail(ctrl.log.String(), 6000))
	}
	for _, e := range adds {
		if e.Class != "cpu-2" || !strings.Contains(e.Message, "short") {
			t.Errorf("add-worker without its reason: %s", e.String())
		}
	}
	if n := replicasOf(t, cs, dep); n != 3 {
		t.Errorf("%s has %d replicas under load, want 3", dep, n)
	}
	perWorker := served(t, s)
	for id, n := range served(t, sB) {
		perWorker[id] += n
	}
	for _, id := range most {
		if perWorker[id] == 0 {
			t.Errorf("worker pod %s served nothing (%v)", id, perWorker)
		}
	}

	// Scale in after the load: the autoscaler drains the idle workers and
	// removes exactly those pods, back to one.
	waitFor(t, "back to one worker", 2*time.Minute, func() bool {
		return len(workerPods(t, cs)) == 1 && replicasOf(t, cs, dep) == 1 && len(ctrl.running()) == 1 && len(ctrlB.running()) == 1
	}, ctrl.proc, ctrlB.proc)
	es = eventsOf(t, leader)
	var removed []string
	for _, e := range es {
		if e.Source == "cluster-autoscaler" && e.Action == "remove-worker" && !e.Time.Before(began) {
			removed = append(removed, e.Worker)
		}
	}
	slices.Sort(removed)
	left := workerPods(t, cs)
	wantLeft := slices.DeleteFunc(slices.Clone(most), func(id string) bool { return slices.Contains(removed, id) })
	if !slices.Equal(left, wantLeft) {
		t.Errorf("after scale-in pods %v remain; the autoscaler removed %v of %v, so %v should", left, removed, most, wantLeft)
	}
	// The pods' comings and goings are in the event log beside the
	// decisions that caused them. The watch delivers a deletion to the
	// event log a moment after the pod list stops showing the pod, so
	// wait for it rather than read the log once.
	missing := func() []string {
		gone := map[string]bool{}
		for _, e := range eventsOf(t, leader) {
			if e.Source == "kubernetes" && e.Action == "pod-gone" {
				gone[e.Worker] = true
			}
		}
		return slices.DeleteFunc(slices.Clone(removed), func(id string) bool { return gone[id] })
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	for _, id := range missing() {
		t.Errorf("no pod-gone event for the removed pod %s within 15s of its going", id)
	}
	_, stopped := kl.state()
	slices.Sort(stopped)
	if !slices.Equal(stopped, removed) {
		t.Errorf("Kubernetes stopped the workers of pods %v; the autoscaler drained and removed %v", stopped, removed)
	}

	// A worker pod deleted under load (kubectl delete pod, a node drain):
	// the ReplicaSet replaces it, the new worker joins, traffic recovers.
	victim := left[0]
	deleted := time.Time{}
	sum, rows := runLoad(t, s, fmt.Sprintf("steps:%.0f@20s", 0.2*capacity), loadgen.RequirementSet{Model: "convnet", LatencyMs: target}, func(r loadgen.Row) {
		if r.Second == 4 && deleted.IsZero() {
			deleted = time.Now()
			go func() {
				if out, err := cl.Kubectl(c, "delete", "pod", "-n", kubeNS, victim, "--wait=false"); err != nil {
					t.Errorf("delete pod %s: %v\n%s", victim, err, out)
				}
			}()
		}
	})
	t.Logf("after deleting %s: %d of %d answered, %d failed", victim, sum.Answered, sum.Sent, sum.Failed)
	sent, answered := 0, 0
	for _, r := range rows {
		if r.Second >= 12 {
			sent += r.Sent
			answered += r.Answered
			if r.Failed > 0 {
				t.Errorf("second %d, long after the pod was deleted: %d of %d failed", r.Second, r.Failed, r.Sent)
			}
		}
	}
	if sent == 0 || float64(answered) < 0.9*float64(sent) {
		t.Errorf("traffic did not recover after the pod was deleted: %d of %d answered from second 12 on", answered, sent)
	}
	// The ReplicaSet replaced the pod and its worker joined; the
	// autoscaler may have added more (a busy host makes replicas look
	// interfered), but every pod is a joined worker and the victim is gone.
	waitFor(t, "the deleted pod replaced and every pod joined", 30*time.Second, func() bool {
		now := workerPods(t, cs)
		return !slices.Contains(now, victim) && len(now) > 0 && slices.Equal(ctrl.running(), now) && slices.Equal(ctrlB.running(), now)
	}, ctrl.proc, ctrlB.proc)
}

// runSplit runs schedule through each of several servers at once, as a
// Service in front of them would split a load (schedule is each one's
// share); onRow hears the first server's rows.
func runSplit(t *testing.T, servers []*server, schedule string, set loadgen.RequirementSet, onRow func(loadgen.Row)) []loadgen.Summary {
	t.Helper()
	share, err := loadgen.ParseSchedule(schedule)
	if err != nil {
		t.Fatal(err)
	}
	set.Weight = 1
	sums := make([]loadgen.Summary, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sender := loadgen.NewHTTPSender("http://"+srv.addr, 64, 1)
			defer sender.Close()
			c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cfg := loadgen.Config{Schedule: share, ScheduleName: schedule, Seed: uint64(i + 1), Mix: loadgen.Mix{set}, Sender: sender}
			if i == 0 {
				cfg.OnRow = onRow
			}
			sums[i], _, errs[i] = loadgen.Run(c, cfg)
		}()
	}
	wg.Wait()
	for i, sum := range sums {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		t.Logf("load %s share %d: sent %d answered %d refused %d failed %d violations %d p50 %.1f ms p99 %.1f ms statuses %v",
			schedule, i, sum.Sent, sum.Answered, sum.Refused, sum.Failed, sum.Violations, sum.P50Ms, sum.P99Ms, sum.Statuses)
	}
	return sums
}

// pinnedVariantOn is the 1-thread variant of arch with the smallest max
// batch profiled on class.
func pinnedVariantOn(t *testing.T, s *server, arch, class string) string {
	t.Helper()
	vs, err := s.c.Variants(ctx(t), arch)
	if err != nil {
		t.Fatal(err)
	}
	best, batch := "", 0
	for _, v := range vs {
		if _, ok := v.ProfileOn(class); ok && v.Threads == 1 && (best == "" || v.MaxBatch < batch) {
			best, batch = v.Name, v.MaxBatch
		}
	}
	if best == "" {
		t.Fatalf("no 1-thread variant of %s profiled on %s", arch, class)
	}
	return best
}

func variantOf(t *testing.T, s *server, arch, variant string) catalog.Variant {
	t.Helper()
	vs, err := s.c.Variants(ctx(t), arch)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Name == variant {
			return v
		}
	}
	t.Fatalf("no variant %s of %s", variant, arch)
	return catalog.Variant{}
}
