// Package kubelocal runs a real Kubernetes control plane on loopback for
// integration tests: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and KWOK, whose fake nodes take scheduled pods to Running
// without any container runtime. Deployments, ReplicaSets, scheduling and
// scaling are therefore the real thing; only the containers are missing.
//
// The binaries are built from Go modules by deploy/k8s-local/build.sh
// (`make k8s`). A machine without them fails the tests that need them with
// that instruction; it never skips them. The recipe behind the flags used
// here, with its measurements, is in the k8s-local research notes: the
// whole control plane costs about 600 MiB of memory and starts in about
// 5 s on two cores.
package kubelocal

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// BinEnv names the environment variable that overrides where BinDir looks
// for the control plane binaries.
const BinEnv = "INFAAS_K8S_BIN"

// binaries are the programs a binary directory must hold; stagesFile is
// KWOK's Stage objects (what happens to nodes and pods), without which
// KWOK exits with "no stages found".
var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok"}

const stagesFile = "kwok-stages.yaml"

const (
	// startAttempts covers the race between finding free ports and the
	// components binding them: a start that fails on a taken port is
	// retried once on fresh ports.
	startAttempts = 2
	pollInterval  = 100 * time.Millisecond
	// requestTimeout bounds one health or API request; a busy machine can
	// make a starting apiserver slow to answer.
	requestTimeout = 5 * time.Second
	// The waits are generous because a loaded two-core machine has been
	// seen to double the apiserver's usual 4 s start.
	etcdTimeout      = 30 * time.Second
	apiserverTimeout = 90 * time.Second
	componentTimeout = 60 * time.Second // controller-manager, scheduler, KWOK; nodes Ready; ServiceAccounts
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL:
	// kube-apiserver can take several seconds to shut down.
	stopGrace = 10 * time.Second
	tailLines = 30
	// tailBytes is how much of the end of a log is read for its tail.
	tailBytes = 64 << 10
)

// BinDir returns the directory holding the control plane binaries:
// $INFAAS_K8S_BIN if set, else <module root>/.cache/k8s/bin, the module
// root being the first directory holding go.mod at or above the working
// directory (a test's working directory is its package's). It returns an
// error that says to run `make k8s` when a binary or kwok-stages.yaml is
// missing.
func BinDir() (string, error) {
	if dir := os.Getenv(BinEnv); dir != "" {
		if err := checkBin(dir); err != nil {
			return "", fmt.Errorf("%w (the directory comes from $%s)", err, BinEnv)
		}
		return dir, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("kubelocal: find the control plane binaries: %w; run `make k8s` in the module root or set $%s", err, BinEnv)
	}
	dir := filepath.Join(root, ".cache", "k8s", "bin")
	if err := checkBin(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// moduleRoot walks up from the working directory to the one holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fi, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && fi.Mode().IsRegular() {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// checkBin says which of the control plane's files dir lacks.
func checkBin(dir string) error {
	var missing []string
	for _, b := range binaries {
		fi, err := os.Stat(filepath.Join(dir, b))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, stagesFile)); err != nil || !fi.Mode().IsRegular() {
		missing = append(missing, stagesFile)
	}
	if len(missing) > 0 {
		return fmt.Errorf("kubelocal: %s lacks %s: run `make k8s` (deploy/k8s-local/build.sh builds the control plane "+
			"from Go modules into .cache/k8s/bin; about 20 minutes and 3 GB of memory the first time)", dir, strings.Join(missing, ", "))
	}
	return nil
}

// Options configures Start.
type Options struct {
	// Bin is the directory of the control plane binaries; BinDir() when
	// empty.
	Bin string
	// Dir is where the cluster keeps its data, keys, kubeconfig and the
	// components' logs (Dir/<component>.log). Required; tests pass
	// t.TempDir(). Start replaces Dir/etcd-data and Dir/certs.
	Dir string
	// Nodes are the fake nodes to create, all managed by KWOK; nil means
	// one node, "kwok-node-0".
	Nodes []Node
	// Log, when set, receives every component's whole log when Start
	// fails, and a note with the log's tail when a component exits while
	// the cluster runs.
	Log io.Writer
}

// Node describes a fake node.
type Node struct {
	Name string
	// Labels are added to (and may override) kubernetes.io/hostname,
	// kubernetes.io/os (linux), kubernetes.io/arch (this machine's) and
	// type=kwok.
	Labels map[string]string
	// CPU and Memory are the node's capacity, all of it allocatable;
	// "32" and "256Gi" when empty.
	CPU    string
	Memory string
	// Extra are further resources, e.g. "nvidia.com/gpu": "1".
	Extra map[string]string
}

// Cluster is a running control plane.
type Cluster struct {
	// Kubeconfig is the path of an admin kubeconfig: a static bearer
	// token in system:masters, and insecure-skip-tls-verify because the
	// apiserver signs its own certificate.
	Kubeconfig string
	// Server is the apiserver's URL, https://127.0.0.1:PORT.
	Server string
	// Token is the admin bearer token.
	Token string
	// Dir and Bin are Options.Dir and the binary directory, absolute.
	Dir, Bin string

	log    io.Writer
	logMu  sync.Mutex
	client *http.Client

	procs                             []*proc // in start order; fixed once Start returns
	etcd, apiserver, kcm, sched, kwok *proc

	running  atomic.Bool // Start succeeded: later exits are reported to log
	stopping atomic.Bool
	stopOnce sync.Once
}

// proc is one component's process.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	err     error         // cmd.Wait's answer; read after done
}

// Start starts etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and KWOK on free loopback ports, waits until each is
// healthy, creates the nodes, and returns once they are Ready and the
// "default" ServiceAccount of namespace "default" exists (the
// ServiceAccount admission plugin rejects pods until it does). On failure
// it stops what it started and returns an error ending with the tail of
// the failing component's log. ctx bounds the start only; the cluster runs
// until Stop or until the test binary dies.
func Start(ctx context.Context, opt Options) (*Cluster, error) {
	if opt.Dir == "" {
		return nil, errors.New("kubelocal: Options.Dir is required")
	}
	var err error
	if opt.Dir, err = filepath.Abs(opt.Dir); err != nil {
		return nil, fmt.Errorf("kubelocal: %w", err)
	}
	if opt.Bin == "" {
		if opt.Bin, err = BinDir(); err != nil {
			return nil, err
		}
	} else if err := checkBin(opt.Bin); err != nil {
		return nil, err
	}
	if opt.Bin, err = filepath.Abs(opt.Bin); err != nil {
		return nil, fmt.Errorf("kubelocal: %w", err)
	}
	if opt.Nodes, err = withDefaults(opt.Nodes); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opt.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("kubelocal: %w", err)
	}
	for attempt := 1; ; attempt++ {
		c, err := start(ctx, opt)
		if err == nil {
			return c, nil
		}
		var se *startError
		if attempt < startAttempts && errors.As(err, &se) && se.clash && ctx.Err() == nil {
			continue
		}
		if opt.Log != nil {
			c.copyLogs(opt.Log)
		}
		return nil, err
	}
}

// withDefaults checks nodes and fills in what was left empty.
func withDefaults(nodes []Node) ([]Node, error) {
	if len(nodes) == 0 {
		return []Node{{Name: "kwok-node-0", CPU: "32", Memory: "256Gi"}}, nil
	}
	out := make([]Node, len(nodes))
	seen := map[string]bool{}
	for i, n := range nodes {
		if n.Name == "" {
			return nil, fmt.Errorf("kubelocal: node %d has no name", i)
		}
		if seen[n.Name] {
			return nil, fmt.Errorf("kubelocal: node %q is listed twice", n.Name)
		}
		seen[n.Name] = true
		if n.CPU == "" {
			n.CPU = "32"
		}
		if n.Memory == "" {
			n.Memory = "256Gi"
		}
		out[i] = n
	}
	return out, nil
}

// start is one attempt of Start. It returns the cluster even on failure
// (stopped), so that Start can copy its logs.
func start(ctx context.Context, opt Options) (c *Cluster, err error) {
	c = &Cluster{
		Dir: opt.Dir, Bin: opt.Bin, Kubeconfig: filepath.Join(opt.Dir, "kubeconfig"), log: opt.Log,
		// Proxy is nil so that no HTTPS_PROXY setting gets between the
		// test and its loopback cluster.
		client: &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	// A previous attempt, or a previous cluster in the same Dir, must not
	// leave its store or certificates behind.
	for _, d := range []string{"etcd-data", "certs"} {
		if err := os.RemoveAll(filepath.Join(c.Dir, d)); err != nil {
			return c, fmt.Errorf("kubelocal: %w", err)
		}
	}
	ports, err := freePorts(6)
	if err != nil {
		return c, err
	}
	etcdPort, peerPort, apiPort, kcmPort, schedPort, kwokPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	c.Server = "https://" + net.JoinHostPort("127.0.0.1", apiPort)
	c.Token = rand.Text()
	if err := c.writeFiles(); err != nil {
		return c, err
	}
	path := func(name string) string { return filepath.Join(c.Dir, name) }
	loopback := func(scheme, port string) string { return scheme + "://" + net.JoinHostPort("127.0.0.1", port) }

	// etcd and the apiserver start together: the apiserver retries etcd
	// until it answers, and its own start dominates.
	etcdURL, peerURL := loopback("http", etcdPort), loopback("http", peerPort)
	if c.etcd, err = c.spawn("etcd",
		"--name=local", "--data-dir="+path("etcd-data"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=local="+peerURL,
		"--listen-metrics-urls=", // metrics stay on the client port; nothing else listens
		"--unsafe-no-fsync",      // a throw-away store needs no durability
	); err != nil {
		return c, err
	}
	if c.apiserver, err = c.spawn("kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--secure-port="+apiPort, "--advertise-address=127.0.0.1",
		// Without this the apiserver writes its loopback address into the
		// "kubernetes" Endpoints, as if it were reachable from pods.
		"--endpoint-reconciler-type=none",
		"--cert-dir="+path("certs"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+path("sa.pub"), "--service-account-signing-key-file="+path("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC", "--token-auth-file="+path("tokens.csv"),
	); err != nil {
		return c, err
	}
	if err := c.waitFor(ctx, c.etcd, "etcd to be healthy", etcdTimeout, c.httpCheck(etcdURL+"/health", `{"health":"true"`)); err != nil {
		return c, err
	}
	if err := c.waitFor(ctx, c.apiserver, "kube-apiserver to be ready", apiserverTimeout, c.httpCheck(c.Server+"/readyz", "ok")); err != nil {
		return c, err
	}

	// The rest are clients of the apiserver and start once it is ready.
	if c.kcm, err = c.spawn("kube-controller-manager",
		"--kubeconfig="+c.Kubeconfig, "--bind-address=127.0.0.1", "--secure-port="+kcmPort,
		"--leader-elect=false", "--controllers=*",
		"--service-account-private-key-file="+path("sa.key"), "--use-service-account-credentials=false",
	); err != nil {
		return c, err
	}
	if c.sched, err = c.spawn("kube-scheduler",
		"--kubeconfig="+c.Kubeconfig, "--bind-address=127.0.0.1", "--secure-port="+schedPort, "--leader-elect=false",
	); err != nil {
		return c, err
	}
	if c.kwok, err = c.spawn("kwok",
		"--kubeconfig="+c.Kubeconfig, "--config="+filepath.Join(c.Bin, stagesFile),
		"--manage-all-nodes=true", "--server-address="+net.JoinHostPort("127.0.0.1", kwokPort),
		"--node-lease-duration-seconds=40",
		// Pod and node IPs are made up; no traffic goes anywhere.
		"--cidr=10.0.0.1/24", "--node-ip=10.0.0.1",
	); err != nil {
		return c, err
	}
	for _, w := range []struct {
		p   *proc
		url string
	}{
		{c.kcm, loopback("https", kcmPort) + "/healthz"},
		{c.sched, loopback("https", schedPort) + "/healthz"},
		{c.kwok, loopback("http", kwokPort) + "/healthz"},
	} {
		if err := c.waitFor(ctx, w.p, w.p.name+" to be healthy", componentTimeout, c.httpCheck(w.url, "ok")); err != nil {
			return c, err
		}
	}

	if err := c.createNodes(ctx, opt.Nodes); err != nil {
		return c, err
	}
	if err := c.waitFor(ctx, c.kwok, "the nodes to be Ready", componentTimeout, c.nodesReady(opt.Nodes)); err != nil {
		return c, err
	}
	if err := c.waitServiceAccount(ctx, "default"); err != nil {
		return c, err
	}
	// A component that lost a port race may have exited after another
	// process on that port answered its health check.
	for _, p := range c.procs {
		select {
		case <-p.done:
			return c, p.failure(fmt.Errorf("%s exited during the start (%v)", p.name, p.err))
		default:
		}
	}
	c.running.Store(true)
	return c, nil
}

// freePorts asks the kernel for n distinct loopback ports nobody listens
// on. They are free only until someone else takes them; Start retries.
func freePorts(n int) ([]string, error) {
	ports := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("kubelocal: find a free port: %w", err)
		}
		// Held open until all are found, so that the n are distinct.
		defer l.Close()
		_, port, err := net.SplitHostPort(l.Addr().String())
		if err != nil {
			return nil, fmt.Errorf("kubelocal: find a free port: %w", err)
		}
		ports = append(ports, port)
	}
	return ports, nil
}

// writeFiles writes the service-account key pair, the static token file
// and the admin kubeconfig into c.Dir.
func (c *Cluster) writeFiles() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("kubelocal: service-account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("kubelocal: service-account key: %w", err)
	}
	// rand.Text is base32, so the token needs no quoting in either file.
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubelocal
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: %s
contexts:
- name: kubelocal
  context:
    cluster: kubelocal
    user: admin
current-context: kubelocal
`, c.Server, c.Token)
	for name, data := range map[string][]byte{
		"sa.key":     pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		"sa.pub":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
		"tokens.csv": []byte(c.Token + ",admin,admin,system:masters\n"), // token,user,uid,group
		"kubeconfig": []byte(kubeconfig),
	} {
		if err := os.WriteFile(filepath.Join(c.Dir, name), data, 0o600); err != nil {
			return fmt.Errorf("kubelocal: %w", err)
		}
	}
	return nil
}

// spawn starts component name from c.Bin with its output in
// c.Dir/<name>.log.
func (c *Cluster) spawn(name string, args ...string) (*proc, error) {
	logPath := filepath.Join(c.Dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("kubelocal: %w", err)
	}
	cmd := exec.Command(filepath.Join(c.Bin, name), args...)
	cmd.Dir = c.Dir
	// A file, not a buffer: the child writes it directly, so no copying
	// goroutine can keep Wait waiting.
	cmd.Stdout, cmd.Stderr = f, f
	err = startChild(cmd)
	f.Close() // the child holds its own descriptor
	if err != nil {
		return nil, fmt.Errorf("kubelocal: start %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	c.procs = append(c.procs, p)
	go c.reap(p)
	return p, nil
}

// reap waits for p to exit and, if the cluster was running and nobody
// asked p to stop, says so on the log: the test's next request will fail
// in a way that otherwise says nothing about why.
func (c *Cluster) reap(p *proc) {
	p.err = p.cmd.Wait()
	close(p.done)
	if c.running.Load() && !c.stopping.Load() {
		c.report(fmt.Sprintf("kubelocal: %s exited while the cluster was running (%v); %s", p.name, p.err, p.tail()))
	}
}

// report writes msg to the log, if there is one.
func (c *Cluster) report(msg string) {
	if c.log == nil {
		return
	}
	c.logMu.Lock()
	defer c.logMu.Unlock()
	fmt.Fprintln(c.log, msg)
}

// copyLogs writes every component's whole log to w.
func (c *Cluster) copyLogs(w io.Writer) {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	for _, p := range c.procs {
		fmt.Fprintf(w, "==== %s (%s) ====\n", p.name, p.logPath)
		if data, err := os.ReadFile(p.logPath); err != nil {
			fmt.Fprintln(w, err)
		} else {
			w.Write(data)
		}
	}
}

// tail returns the last tailLines lines of p's log, introduced.
func (p *proc) tail() string {
	text, err := p.logEnd()
	if err != nil {
		return fmt.Sprintf("its log %s: %v", p.logPath, err)
	}
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return fmt.Sprintf("its log %s is empty", p.logPath)
	}
	lines := strings.Split(text, "\n")
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return fmt.Sprintf("last lines of %s:\n%s", p.logPath, strings.Join(lines, "\n"))
}

// logEnd returns the last tailBytes of p's log.
func (p *proc) logEnd() (string, error) {
	f, err := os.Open(p.logPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > tailBytes {
		if _, err := f.Seek(-tailBytes, io.SeekEnd); err != nil {
			return "", err
		}
	}
	data, err := io.ReadAll(f)
	return string(data), err
}

// startError is a failed start. clash says that a component could not
// bind its port, which another attempt on fresh ports cures.
type startError struct {
	err   error
	clash bool
}

func (e *startError) Error() string { return e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

// failure wraps err with the tail of p's log.
func (p *proc) failure(err error) error {
	end, _ := p.logEnd()
	return &startError{
		err:   fmt.Errorf("kubelocal: %w; %s", err, p.tail()),
		clash: strings.Contains(end, "address already in use"),
	}
}

// check is one poll of a wait: whether the condition holds, and if not,
// what was seen, for the error if the wait times out.
type check func(ctx context.Context) (ok bool, seen string)

// waitFor polls ok every pollInterval until it holds. It gives up when
// timeout passes, when ctx ends or when p (the component the wait depends
// on) exits, and then returns an error ending with the tail of p's log.
func (c *Cluster) waitFor(ctx context.Context, p *proc, what string, timeout time.Duration, ok check) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		// An exit is looked for first: another process may answer on the
		// port of a component that failed to bind it.
		select {
		case <-p.done:
			return p.failure(fmt.Errorf("%s exited (%v) while waiting for %s", p.name, p.err, what))
		default:
		}
		done, seen := ok(ctx)
		if done {
			return nil
		}
		select {
		case <-p.done:
			return p.failure(fmt.Errorf("%s exited (%v) while waiting for %s", p.name, p.err, what))
		case <-ctx.Done():
			return p.failure(fmt.Errorf("waiting for %s (last seen: %s): %w", what, seen, ctx.Err()))
		case <-deadline.C:
			return p.failure(fmt.Errorf("gave up waiting %v for %s (last seen: %s)", timeout, what, seen))
		case <-tick.C:
		}
	}
}

// httpCheck is a check that GETs url and holds when the answer is 200 OK
// with a body that begins with want.
func (c *Cluster) httpCheck(url, want string) check {
	return func(ctx context.Context) (bool, string) {
		code, body, err := c.request(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err.Error()
		}
		if code == http.StatusOK && strings.HasPrefix(strings.TrimSpace(string(body)), want) {
			return true, ""
		}
		return false, fmt.Sprintf("HTTP %d: %s", code, brief(body))
	}
}

// brief shortens an answer for an error message: the failing checks of a
// verbose /readyz, else the start of the body.
func brief(body []byte) string {
	var failed []string
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "[-]") {
			failed = append(failed, strings.TrimSpace(line))
		}
	}
	if len(failed) > 0 {
		return strings.Join(failed, "; ")
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// request sends one request with the admin token, bounded by
// requestTimeout, and returns the status code and body.
func (c *Cluster) request(ctx context.Context, method, url string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, data, err
}

// createNodes creates the fake nodes through the API. Their status is
// what a kubelet would register; KWOK, which manages every node, adds the
// conditions that make them Ready and keeps their leases fresh.
func (c *Cluster) createNodes(ctx context.Context, nodes []Node) error {
	for _, n := range nodes {
		body, err := json.Marshal(nodeObject(n))
		if err != nil {
			return fmt.Errorf("kubelocal: node %s: %w", n.Name, err)
		}
		code, answer, err := c.request(ctx, http.MethodPost, c.Server+"/api/v1/nodes", body)
		if err == nil && code != http.StatusCreated {
			err = fmt.Errorf("HTTP %d: %s", code, brief(answer))
		}
		if err != nil {
			return c.apiserver.failure(fmt.Errorf("create node %s: %w", n.Name, err))
		}
	}
	return nil
}

// nodeObject is n as a v1 Node, as the KWOK documentation writes one.
func nodeObject(n Node) map[string]any {
	labels := map[string]string{
		"kubernetes.io/hostname": n.Name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     runtime.GOARCH,
		"type":                   "kwok",
	}
	maps.Copy(labels, n.Labels)
	resources := map[string]string{"cpu": n.CPU, "memory": n.Memory, "pods": "110"}
	maps.Copy(resources, n.Extra)
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "Node",
		"metadata": map[string]any{
			"name":   n.Name,
			"labels": labels,
			"annotations": map[string]string{
				"node.alpha.kubernetes.io/ttl": "0",
				"kwok.x-k8s.io/node":           "fake",
			},
		},
		"status": map[string]any{"allocatable": resources, "capacity": resources},
	}
}

// nodesReady is a check that holds when every node has condition Ready.
func (c *Cluster) nodesReady(nodes []Node) check {
	return func(ctx context.Context) (bool, string) {
		code, body, err := c.request(ctx, http.MethodGet, c.Server+"/api/v1/nodes", nil)
		if err != nil {
			return false, err.Error()
		}
		if code != http.StatusOK {
			return false, fmt.Sprintf("HTTP %d: %s", code, brief(body))
		}
		var list struct {
			Items []struct {
				Metadata struct{ Name string }
				Status   struct {
					Conditions []struct{ Type, Status string }
				}
			}
		}
		if err := json.Unmarshal(body, &list); err != nil {
			return false, err.Error()
		}
		ready := map[string]bool{}
		for _, item := range list.Items {
			for _, cond := range item.Status.Conditions {
				if cond.Type == "Ready" && cond.Status == "True" {
					ready[item.Metadata.Name] = true
				}
			}
		}
		var waiting []string
		for _, n := range nodes {
			if !ready[n.Name] {
				waiting = append(waiting, n.Name)
			}
		}
		if len(waiting) > 0 {
			return false, "not Ready: " + strings.Join(waiting, ", ")
		}
		return true, ""
	}
}

// waitServiceAccount waits until the controller-manager has made the
// "default" ServiceAccount of namespace ns: until then the ServiceAccount
// admission plugin rejects every pod there.
func (c *Cluster) waitServiceAccount(ctx context.Context, ns string) error {
	url := c.Server + "/api/v1/namespaces/" + ns + "/serviceaccounts/default"
	return c.waitFor(ctx, c.kcm, fmt.Sprintf("ServiceAccount %s/default", ns), componentTimeout, func(ctx context.Context) (bool, string) {
		code, body, err := c.request(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("HTTP %d: %s", code, brief(body))
	})
}

// Kubectl runs the built kubectl against the cluster and returns its
// combined output; an error includes the output. Its discovery cache is
// kept in c.Dir, not ~/.kube/cache, which would otherwise gain an entry
// for every port a test ever used.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	return c.KubectlStdin(ctx, nil, args...)
}

// KubectlStdin is Kubectl with stdin (for `apply -f -`).
func (c *Cluster) KubectlStdin(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	full := append([]string{"--kubeconfig=" + c.Kubeconfig, "--cache-dir=" + filepath.Join(c.Dir, "kubectl-cache")}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(c.Bin, "kubectl"), full...)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := startChild(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return out.Bytes(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return out.Bytes(), nil
}

// CreateNamespace creates namespace ns unless it exists, and waits for its
// "default" ServiceAccount, without which no pod can be created there.
func (c *Cluster) CreateNamespace(ctx context.Context, ns string) error {
	if out, err := c.Kubectl(ctx, "create", "namespace", ns); err != nil && !bytes.Contains(out, []byte("AlreadyExists")) {
		return err
	}
	return c.waitServiceAccount(ctx, ns)
}

// Stop stops every component in reverse start order, each with SIGTERM
// and, after stopGrace, SIGKILL, and waits until all have exited. It may
// be called more than once.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		c.stopping.Store(true)
		for i := len(c.procs) - 1; i >= 0; i-- {
			c.procs[i].stop()
		}
		c.client.CloseIdleConnections()
	})
}

// stop ends p and waits for it.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	grace := time.NewTimer(stopGrace)
	defer grace.Stop()
	select {
	case <-p.done:
		return
	case <-grace.C:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}
