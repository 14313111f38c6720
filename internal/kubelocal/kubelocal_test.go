package kubelocal

import (
	"context"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestControlPlane starts the whole control plane, runs a Deployment onto
// the one node its nodeSelector allows, and checks that Stop leaves
// nothing listening. A machine without the binaries fails here, with the
// instruction to build them: that is CI policy, not an oversight.
func TestControlPlane(t *testing.T) {
	bin, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	began := time.Now()
	c, err := Start(ctx, Options{
		Bin: bin,
		Dir: t.TempDir(),
		Nodes: []Node{
			{Name: "kwok-cpu", Labels: map[string]string{"infaas.io/hardware": "cpu"}},
			{Name: "kwok-gpu", Labels: map[string]string{"infaas.io/hardware": "gpu"}, CPU: "8", Memory: "64Gi",
				Extra: map[string]string{"nvidia.com/gpu": "1"}},
		},
		Log: t.Output(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop) // in case a check below fails; Stop is idempotent
	t.Logf("Start took %v (server %s)", time.Since(began).Round(time.Millisecond), c.Server)

	out, err := c.Kubectl(ctx, "get", "node", "kwok-gpu", "-o", `jsonpath={.status.allocatable.nvidia\.com/gpu} {.status.allocatable.cpu}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "1 8" {
		t.Errorf("kwok-gpu allocatable gpu and cpu = %q, want %q", got, "1 8")
	}

	const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: x
spec:
  replicas: 2
  selector:
    matchLabels: {app: x}
  template:
    metadata:
      labels: {app: x}
    spec:
      nodeSelector: {infaas.io/hardware: cpu}
      containers:
      - name: x
        image: example.invalid/x:1
`
	created := time.Now()
	if _, err := c.KubectlStdin(ctx, strings.NewReader(deployment), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	want := "kwok-cpu Running\nkwok-cpu Running"
	var got string
	for deadline := time.Now().Add(60 * time.Second); got != want; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pods of Deployment x (node phase, one a line) = %q after 60 s, want %q", got, want)
		}
		out, err := c.Kubectl(ctx, "get", "pods", "-l", "app=x", "--sort-by=.metadata.name",
			"-o", `jsonpath={range .items[*]}{.spec.nodeName} {.status.phase}{"\n"}{end}`)
		if err != nil {
			t.Fatal(err)
		}
		got = strings.TrimSpace(string(out))
	}
	t.Logf("Deployment created -> 2 pods Running: %v", time.Since(created).Round(time.Millisecond))

	if err := c.CreateNamespace(ctx, "tenant-a"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateNamespace(ctx, "tenant-a"); err != nil {
		t.Errorf("CreateNamespace of an existing namespace: %v", err)
	}

	stopping := time.Now()
	c.Stop()
	t.Logf("Stop took %v", time.Since(stopping).Round(time.Millisecond))
	u, err := url.Parse(c.Server)
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after Stop", u.Host)
	}
}
