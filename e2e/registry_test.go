package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/client"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/registrar"
)

// TestRegisterProfilesMeasuredVariants is the registry's acceptance test:
// a zoo MLP registered with validation data yields profiled variants,
// every number measured, every dropped one with its reason, and its int8
// variant stays within 1.5 points of fp32 while being much smaller.
func TestRegisterProfilesMeasuredVariants(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	start := time.Now()
	s.registerZoo(t, "mnist-mlp-l")
	t.Logf("registered mnist-mlp-l in %s", time.Since(start))

	c := ctx(t)
	arch, err := s.c.Architecture(c, "mnist-mlp-l")
	if err != nil {
		t.Fatal(err)
	}
	if arch.AccuracySource != catalog.AccuracyMeasured || arch.ValidationSamples != 1000 {
		t.Fatalf("architecture accuracy %.2f is %s on %d samples; want measured on 1000", arch.Accuracy, arch.AccuracySource, arch.ValidationSamples)
	}
	if arch.Accuracy < 90 {
		t.Errorf("fp32 accuracy %.2f%%; the zoo README promises > 90%%", arch.Accuracy)
	}
	vs, err := s.c.Variants(c, "mnist-mlp-l")
	if err != nil {
		t.Fatal(err)
	}
	// How many variants survive pruning depends on measurements a busy
	// machine moves; what must hold is that something is kept and every
	// dropped variant says why (a dominated one names the variant of this
	// architecture that beat it).
	if len(vs) == 0 {
		t.Fatalf("no variant kept; dropped: %v", arch.Dropped)
	}
	for _, d := range arch.Dropped {
		if by, ok := strings.CutPrefix(d.Reason, "dominated by "); ok {
			if !strings.HasPrefix(by, "mnist-mlp-l.") || !strings.Contains(by, "better ") {
				t.Errorf("%s: %q names no variant of mnist-mlp-l and no dimension", d.Name, d.Reason)
			}
		} else if d.Reason == "" {
			t.Errorf("%s was dropped without a reason", d.Name)
		}
	}
	t.Logf("%d variants kept, %d dropped", len(vs), len(arch.Dropped))
	var int8 *catalog.Variant
	for i, v := range vs {
		if v.AccuracySource != catalog.AccuracyMeasured {
			t.Errorf("%s: accuracy %s, want measured", v.Name, v.AccuracySource)
		}
		p := v.Profile
		if p.LoadMs <= 0 || p.PeakMemoryBytes <= 0 || p.ThroughputQPS <= 0 {
			t.Errorf("%s: profile has unmeasured fields: %+v", v.Name, p)
		}
		for _, b := range []int{1, v.MaxBatch} {
			l, ok := p.LatencyMs[b]
			if !ok || l.Samples < 10 || l.P50 <= 0 || l.P99 < l.P50 {
				t.Errorf("%s: latency at batch %d = %+v, want p50 > 0, p99 ≥ p50, ≥ 10 samples", v.Name, b, l)
			}
		}
		if v.Precision == "int8" && int8 == nil {
			int8 = &vs[i]
		}
	}
	if int8 == nil {
		t.Fatalf("no int8 variant kept; dropped: %v", arch.Dropped)
	}
	if d := int8.Accuracy - arch.Accuracy; d < -1.5 || d > 1.5 {
		t.Errorf("int8 accuracy %.2f%% is %.2f points from fp32's %.2f%%", int8.Accuracy, d, arch.Accuracy)
	}
	if int8.FileBytes*2 > arch.ModelBytes {
		t.Errorf("int8 graph is %d bytes, fp32 %d: want it much smaller", int8.FileBytes, arch.ModelBytes)
	}
}

// TestRestartKeepsRegistry: everything registered survives a restart on
// the same data directory, and registering again reuses it.
func TestRestartKeepsRegistry(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	s.registerZoo(t, "mnist-mlp-s")
	s.registerZoo(t, "mnist-8")
	c := ctx(t)
	before := map[string][]catalog.Variant{}
	for _, n := range []string{"mnist-mlp-s", "mnist-8"} {
		vs, err := s.c.Variants(c, n)
		if err != nil {
			t.Fatal(err)
		}
		before[n] = vs
	}
	s.stop()

	s2 := startServer(t, dir)
	l, err := s2.c.Models(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Architectures) != 2 || len(l.UseCases) != 1 {
		t.Fatalf("after restart: %d architectures, %d use cases; want 2 and 1", len(l.Architectures), len(l.UseCases))
	}
	for n, want := range before {
		got, err := s2.c.Variants(c, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d variants after restart, %d before", n, len(got), len(want))
		}
		for i := range got {
			if got[i].Name != want[i].Name || got[i].Profile.LatencyMs[1] != want[i].Profile.LatencyMs[1] ||
				got[i].Profile.PeakMemoryBytes != want[i].Profile.PeakMemoryBytes || got[i].Accuracy != want[i].Accuracy ||
				got[i].KeptBecause != want[i].KeptBecause {
				t.Errorf("%s: variant %d changed across restart:\n got %+v\nwant %+v", n, i, got[i], want[i])
			}
		}
	}
	// The fixed-batch model only offers batch 1.
	for _, v := range before["mnist-8"] {
		if v.MaxBatch != 1 {
			t.Errorf("mnist-8 has a fixed batch of 1, but variant %s has max batch %d", v.Name, v.MaxBatch)
		}
	}
	// Registering identical content again is a no-op that says so.
	st, err := s2.c.Register(c, client.Registration{Name: "mnist-mlp-s", Task: "classification", Dataset: "mnist",
		ModelPath: zootest.Path(t, "models/mnist-mlp-s.onnx"), ValidationDir: zootest.Path(t, "data/mnist"), InputScale: pixelScale})
	if err != nil || st.State != registrar.StateReady || !strings.Contains(st.Phase, "already registered") {
		t.Fatalf("re-registering identical content: %+v, %v; want ready, already registered", st, err)
	}

	// The same model under another name, after the restart: its graphs
	// were timed on this machine before, so the profile cache answers
	// and the same variants are kept, with the same measurements.
	again := registerAs(t, s2, "mnist-mlp-s-again", false)
	if again.Reused == 0 {
		t.Errorf("registering mnist-mlp-s's bytes again reused no profile: %+v", again)
	}
	got, err := s2.c.Variants(c, "mnist-mlp-s-again")
	if err != nil {
		t.Fatal(err)
	}
	if a, b := variantSuffixes(got, "mnist-mlp-s-again"), variantSuffixes(before["mnist-mlp-s"], "mnist-mlp-s"); a != b {
		t.Errorf("same model registered twice kept %s, then %s", b, a)
	}
	for i := range min(len(got), len(before["mnist-mlp-s"])) {
		if g, w := got[i].Profile, before["mnist-mlp-s"][i].Profile; g.LatencyMs[1] != w.LatencyMs[1] || !g.ProfiledAt.Equal(w.ProfiledAt) {
			t.Errorf("%s: reused profile differs: batch 1 %+v at %s, first %+v at %s", got[i].Name, g.LatencyMs[1], g.ProfiledAt, w.LatencyMs[1], w.ProfiledAt)
		}
	}
	// --reprofile measures afresh.
	if fresh := registerAs(t, s2, "mnist-mlp-s-fresh", true); fresh.Reused != 0 {
		t.Errorf("a registration with reprofile reused %d profiles", fresh.Reused)
	}
	fresh, err := s2.c.Variants(c, "mnist-mlp-s-fresh")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range fresh {
		if !v.Profile.ProfiledAt.After(before["mnist-mlp-s"][0].Profile.ProfiledAt) {
			t.Errorf("%s: profiled at %s, not after the first registration (%s)", v.Name, v.Profile.ProfiledAt, before["mnist-mlp-s"][0].Profile.ProfiledAt)
		}
	}
}

// registerAs registers the zoo's mnist-mlp-s under name and waits for it.
func registerAs(t *testing.T, s *server, name string, reprofile bool) registrar.Status {
	t.Helper()
	c := ctx(t)
	if _, err := s.c.Register(c, client.Registration{Name: name, Task: "classification", Dataset: "mnist", Reprofile: reprofile,
		ModelPath: zootest.Path(t, "models/mnist-mlp-s.onnx"), ValidationDir: zootest.Path(t, "data/mnist"), InputScale: pixelScale}); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	st, err := s.c.Wait(c, name, nil)
	if err != nil {
		t.Fatalf("register %s: %v\n%s", name, err, s.log.String())
	}
	return st
}

// variantSuffixes is the names of vs without the architecture's prefix.
func variantSuffixes(vs []catalog.Variant, arch string) string {
	var out []string
	for _, v := range vs {
		out = append(out, strings.TrimPrefix(v.Name, arch+"."))
	}
	return strings.Join(out, " ")
}

// TestKilledMidRegistrationLeavesNothing kills the server while it
// profiles, restarts it, and checks that no metadata and no blob of the
// interrupted registration remain, and that registering again works.
func TestKilledMidRegistrationLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	s.registerZoo(t, "mnist-mlp-s") // something that must survive
	c := ctx(t)
	blobsBefore := listBlobs(t, dir)

	if _, err := s.c.Register(c, client.Registration{Name: "mnist-cnn-s", Task: "classification", Dataset: "mnist",
		ModelPath: zootest.Path(t, "models/mnist-cnn-s.onnx"), ValidationDir: zootest.Path(t, "data/mnist"), InputScale: pixelScale}); err != nil {
		t.Fatal(err)
	}
	// Wait until it is profiling: the model blob has been written by then.
	for {
		st, err := s.c.Registration(c, "mnist-cnn-s")
		if err != nil {
			t.Fatal(err)
		}
		if st.Phase == "profiling variants" {
			break
		}
		if st.State == registrar.StateReady || st.State == registrar.StateFailed {
			t.Fatalf("registration finished (%s) before it could be interrupted", st.State)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(listBlobs(t, dir)) <= len(blobsBefore) {
		t.Fatalf("the interrupted registration wrote no blob; the test would prove nothing")
	}
	s.kill()

	// Without a collection grace period, recovery removes the interrupted
	// registration's blobs at once (TestDeleteUnloadsAndCollects waits one
	// out).
	s2 := startServer(t, dir, "--gc-grace", "0")
	l, err := s2.c.Models(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Architectures) != 1 || l.Architectures[0].Name != "mnist-mlp-s" {
		t.Fatalf("after the crash: architectures %v, want only mnist-mlp-s", names(l.Architectures))
	}
	if _, err := s2.c.Architecture(c, "mnist-cnn-s"); !isStatus(err, 404) {
		t.Fatalf("interrupted architecture still visible: %v", err)
	}
	if after := listBlobs(t, dir); len(after) != len(blobsBefore) {
		t.Fatalf("blobs after recovery: %d, before the interrupted registration: %d", len(after), len(blobsBefore))
	}
	s2.registerZoo(t, "mnist-cnn-s")
}

func listBlobs(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(dir, "models", "sha256")
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".attrs") && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

func names(as []catalog.Architecture) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Name)
	}
	return out
}

func isStatus(err error, code int) bool {
	var e *client.Error
	return errors.As(err, &e) && e.Status == code
}

// TestDeleteUnloadsAndCollects: deleting an architecture unloads its
// replicas, makes its name unknown to queries — while another architecture
// keeps serving — and removes the blobs only it referenced once they have
// been unreferenced for the collection grace period (not before).
func TestDeleteUnloadsAndCollects(t *testing.T) {
	dir := t.TempDir()
	const grace = 3 * time.Second
	s := startServer(t, dir, "--gc-grace", grace.String())
	s.registerZoo(t, "mnist-mlp-s")
	blobsOne := len(listBlobs(t, dir))
	s.registerZoo(t, "mnist-mlp-m")
	c := ctx(t)
	set := mnist(t)
	for _, m := range []string{"mnist-mlp-s", "mnist-mlp-m"} {
		if _, err := s.c.Infer(c, m, samples(set, 0, 1), nil); err != nil {
			t.Fatal(err)
		}
	}
	blobsTwo := len(listBlobs(t, dir))
	if err := s.c.Delete(c, "mnist-mlp-m"); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	if n := len(listBlobs(t, dir)); n != blobsTwo && time.Since(deleted) < grace {
		t.Fatalf("%d blobs right after the delete, %d before it: deleted within the %s grace period", n, blobsTwo, grace)
	}
	if err := s.c.Delete(c, "mnist-mlp-m"); !isStatus(err, 404) {
		t.Fatalf("deleting twice: %v, want 404", err)
	}
	if _, err := s.c.Infer(c, "mnist-mlp-m", samples(set, 0, 1), nil); !isStatus(err, 404) {
		t.Fatalf("query of a deleted architecture: %v, want 404", err)
	}
	waitFor(t, "the deleted architecture's blobs collected after the grace period", grace+10*time.Second, func() bool {
		return len(listBlobs(t, dir)) == blobsOne
	})
	if n := len(listBlobs(t, dir)); n != blobsOne {
		t.Fatalf("%d blobs after the delete, %d before the second registration", n, blobsOne)
	}
	// Workers report their state every 50 ms: the unloads show within a
	// few reports.
	var left string
	deadline := time.Now().Add(5 * time.Second)
	for {
		ws, err := s.c.Workers(c)
		if err != nil {
			t.Fatal(err)
		}
		left = ""
		for _, w := range ws {
			for _, r := range w.Replicas {
				if r.Architecture == "mnist-mlp-m" && r.State != "draining" {
					left = fmt.Sprintf("replica %s of the deleted architecture is %s on %s", r.ID, r.State, w.ID)
				}
			}
		}
		if left == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(left + " 5 s after the delete")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s.c.Infer(c, "mnist-mlp-s", samples(set, 0, 1), nil); err != nil {
		t.Fatalf("the other architecture stopped serving: %v", err)
	}
}
