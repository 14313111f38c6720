package e2e

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infaas/infaas/catalog"
	"github.com/infaas/infaas/client"
	"github.com/infaas/infaas/internal/zootest"
	"github.com/infaas/infaas/onnx"
	"github.com/infaas/infaas/validation"
)

// TestRegistrationBadInput: every kind of bad registration gets a precise
// status and a message that says what is wrong, and leaves nothing behind.
func TestRegistrationBadInput(t *testing.T) {
	dir, tmp := t.TempDir(), t.TempDir()
	s := startServer(t, dir, "--max-upload", "3000000", "--allow-file-root", tmp, "--allow-file-root", "/dev")
	s.registerZoo(t, "mnist-mlp-s")
	c := ctx(t)
	write := func(name string, data []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mlpS, err := os.ReadFile(zootest.Path(t, "models/mnist-mlp-s.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	// A model that parses as ONNX but that ONNX Runtime refuses: an unknown operator.
	m, err := onnx.Parse(mlpS)
	if err != nil {
		t.Fatal(err)
	}
	m.Graph.Node[len(m.Graph.Node)-1].OpType = "NoSuchOperator"
	broken, err := onnx.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	// A weight whose dimensions disagree with its data (this crashed the
	// int8 rewrite once: makeslice out of range; registrar.TestContain).
	// ONNX Runtime, in a child process, refuses it first here.
	lm, err := onnx.Parse(mlpS)
	if err != nil {
		t.Fatal(err)
	}
	lm.Graph.Initializer[0].Dims = []int64{1 << 40, 1 << 20}
	lying, err := onnx.Marshal(lm)
	if err != nil {
		t.Fatal(err)
	}
	// Validation data whose labels go past the model's 10 classes.
	badLabels := t.TempDir()
	inputs, _ := os.ReadFile(zootest.Path(t, "data/mnist/inputs.idx"))
	_ = os.WriteFile(filepath.Join(badLabels, "inputs.idx"), inputs, 0o600)
	labels := make([]byte, 1000)
	labels[7] = 11
	_ = os.WriteFile(filepath.Join(badLabels, "labels.idx"), validation.EncodeIDXUint8([]int{1000}, labels), 0o600)
	// Validation samples of the wrong size.
	badShape := t.TempDir()
	_ = os.WriteFile(filepath.Join(badShape, "inputs.idx"), validation.EncodeIDXUint8([]int{2, 10, 10}, make([]byte, 200)), 0o600)
	_ = os.WriteFile(filepath.Join(badShape, "labels.idx"), validation.EncodeIDXUint8([]int{2}, []byte{1, 2}), 0o600)
	big := write("big.onnx", append(append([]byte{}, mlpS...), make([]byte, 3_100_000)...))

	ok := func(r client.Registration) client.Registration {
		if r.Task == "" {
			r.Task = "classification"
		}
		if r.Dataset == "" {
			r.Dataset = "mnist"
		}
		if r.ValidationDir == "" && r.Accuracy == nil {
			r.ValidationDir = zootest.Path(t, "data/mnist")
		}
		r.InputScale = pixelScale
		return r
	}
	acc := 90.0
	cases := []struct {
		name   string
		reg    client.Registration
		status int
		msg    string
	}{
		{"not onnx", ok(client.Registration{Name: "a1", ModelPath: write("notonnx.onnx", []byte("this is not a model, just text\n"))}), 400, "not an ONNX model"},
		{"empty file", ok(client.Registration{Name: "a2", ModelPath: write("empty.onnx", nil)}), 400, "no model file"},
		{"onnx runtime rejects", ok(client.Registration{Name: "a3", ModelPath: write("broken.onnx", broken)}), 422, "ONNX Runtime cannot load it"},
		{"a weight whose dims lie", ok(client.Registration{Name: "a15", ModelPath: write("lying.onnx", lying)}), 422, "ONNX Runtime cannot load it"},
		{"duplicate name, other content", ok(client.Registration{Name: "mnist-mlp-s", ModelPath: zootest.Path(t, "models/mnist-mlp-m.onnx")}), 409, "registered with different content"},
		{"path in name", ok(client.Registration{Name: "../../etc/passwd", ModelPath: zootest.Path(t, "models/mnist-mlp-m.onnx")}), 400, "must be 1–63 letters"},
		{"dot in name", ok(client.Registration{Name: "a.b", ModelPath: zootest.Path(t, "models/mnist-mlp-m.onnx")}), 400, "must be 1–63 letters"},
		{"slash in dataset", ok(client.Registration{Name: "a4", Dataset: "mnist/x", ModelPath: zootest.Path(t, "models/mnist-mlp-m.onnx")}), 400, "dataset"},
		{"labels past the classes", ok(client.Registration{Name: "a5", ModelPath: zootest.Path(t, "models/mnist-mlp-m.onnx"), ValidationDir: badLabels}), 422, "label 11 of sample 7 is out of range"},
		{"samples of the wrong size", ok(client.Registration{Name: "a6", ModelPath: zootest.Path(t, "models/mnist-mlp-m.onnx"), ValidationDir: badShape}), 422, "each validation sample has 100 values"},
		{"input scale out of range", client.Registration{Name: "a14", Task: "classification", Dataset: "mnist", ModelPath: zootest.Path(t, "models/mnist-mlp-m.onnx"), Accuracy: ptr(90.0), InputScale: 1e300}, 400, "input scale must be between"},
		{"accuracy over 100", client.Registration{Name: "a8", Task: "classification", Dataset: "mnist", ModelPath: zootest.Path(t, "models/mnist-mlp-m.onnx"), Accuracy: ptr(101.0)}, 400, "between 0 and 100"},
		{"upload over the limit", ok(client.Registration{Name: "a9", ModelPath: big}), 413, "accepts at most 3000000"},
		{"file URL outside the allowed roots", ok(client.Registration{Name: "a10", ModelURL: "file:///nonexistent/infaas/model.onnx"}), 400, "--allow-file-root"},
		{"object not in bucket", ok(client.Registration{Name: "a11", ModelURL: "file://" + tmp + "/missing.onnx"}), 422, "not found"},
		{"a device that never ends", ok(client.Registration{Name: "a13", ModelURL: "file:///dev/zero"}), 400, "not a regular file"},
		{"file and url", ok(client.Registration{Name: "a12", ModelPath: zootest.Path(t, "models/mnist-mlp-m.onnx"), ModelURL: "file:///x.onnx"}), 400, "not both"},
		{"declared accuracy works", client.Registration{Name: "a13", Task: "classification", Dataset: "mnist", ModelPath: zootest.Path(t, "models/mnist-mlp-m.onnx"), Accuracy: &acc}, 202, ""},
	}
	blobs := len(listBlobs(t, dir))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := s.c.Register(c, tc.reg)
			if tc.status == 202 {
				if err != nil {
					t.Fatalf("want accepted, got %v", err)
				}
				if _, err := s.c.Wait(c, st.Name, nil); err != nil {
					t.Fatal(err)
				}
				return
			}
			var e *client.Error
			if !asError(err, &e) {
				t.Fatalf("want HTTP %d, got %v (status %+v)", tc.status, err, st)
			}
			if e.Status != tc.status || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("got HTTP %d %q; want %d containing %q", e.Status, e.Message, tc.status, tc.msg)
			}
			if n := len(listBlobs(t, dir)); n != blobs {
				t.Fatalf("a refused registration changed the blob count from %d to %d", blobs, n)
			}
			if _, err := s.c.Architecture(c, tc.reg.Name); tc.reg.Name != "mnist-mlp-s" && !isStatus(err, 404) {
				t.Fatalf("refused architecture %q is visible: %v", tc.reg.Name, err)
			}
		})
	}
	// Sources without end: /dev/zero is refused before a byte is read (not
	// a regular file), and so is an 8 GiB (sparse) file (its size is over
	// --max-upload; what announces no size is read through a limit,
	// repository.TestFetch). Neither
	// grows the server by 100 MB; both answer at once (the duration is
	// logged: timings belong to benchmarks).
	sparse := filepath.Join(tmp, "huge.onnx")
	if err := os.WriteFile(sparse, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(sparse, 8<<30); err != nil {
		t.Fatal(err)
	}
	for _, src := range []struct {
		url    string
		status int
		msg    string
	}{
		{"file:///dev/zero", 400, "not a regular file"},
		{"file://" + sparse, 413, "the limit is 3000000"},
	} {
		blobs := len(listBlobs(t, dir))
		before := residentBytes(t, s.cmd.Process.Pid)
		start := time.Now()
		_, err := s.c.Register(c, ok(client.Registration{Name: "endless", ModelURL: src.url}))
		took := time.Since(start)
		grew := residentBytes(t, s.cmd.Process.Pid) - before
		var e *client.Error
		if !asError(err, &e) || e.Status != src.status || !strings.Contains(e.Message, src.msg) {
			t.Fatalf("%s: %v; want HTTP %d containing %q", src.url, err, src.status, src.msg)
		}
		t.Logf("%s: HTTP %d after %s, resident memory %+.1f MB", src.url, e.Status, took.Round(time.Millisecond), float64(grew)/1e6)
		if grew > 100e6 {
			t.Fatalf("%s grew the server's resident memory by %.0f MB", src.url, float64(grew)/1e6)
		}
		if n := len(listBlobs(t, dir)); n != blobs {
			t.Fatalf("%s changed the blob count from %d to %d", src.url, blobs, n)
		}
	}

	a, err := s.c.Architecture(c, "a13")
	if err != nil || a.AccuracySource != "declared" || a.Accuracy != 90 {
		t.Fatalf("declared accuracy: %+v, %v", a, err)
	}
	// Without validation data a variant's accuracy is the declared one
	// less its measured fidelity loss against fp32.
	vs, _ := s.c.Variants(c, "a13")
	for _, v := range vs {
		if v.AccuracySource != "declared" || v.Fidelity == nil || math.Abs(v.Accuracy-(90-v.Fidelity.Loss())) > 1e-9 {
			t.Errorf("%s: accuracy %.3f (%s), fidelity %+v; want 90 less the fidelity loss, declared", v.Name, v.Accuracy, v.AccuracySource, v.Fidelity)
		}
	}
	// With neither validation data nor a declared accuracy, the model
	// registers with an unknown accuracy, and a query with a minimum
	// accuracy passes it by.
	if _, err := s.c.Register(c, client.Registration{Name: "a7", Task: "classification", Dataset: "unknown-acc", ModelPath: zootest.Path(t, "models/mnist-mlp-m.onnx")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Wait(c, "a7", nil); err != nil {
		t.Fatal(err)
	}
	if a, err := s.c.Architecture(c, "a7"); err != nil || a.AccuracySource != catalog.AccuracyUnknown {
		t.Fatalf("no accuracy: %+v, %v", a, err)
	}
	_, err = s.c.Infer(c, "classification.unknown-acc", client.InferInput{Name: "input", Shape: []int64{1, 1, 28, 28}, Datatype: "FP32", Data: make([]float32, 784)},
		map[string]any{"min_accuracy": 50.0, "strict": true})
	var e *client.Error
	if !asError(err, &e) || e.Status != 400 && e.Status != 422 || !strings.Contains(e.Message, "accuracy") {
		t.Fatalf("min_accuracy on a model of unknown accuracy: %v", err)
	}

	// A chunked upload (no Content-Length) over --max-upload is refused
	// while it arrives: the server stops reading near the limit, not after
	// the 64 MB the client would send; and a client that announces a large
	// inference body and trickles it holds nobody else up.
	slow, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := fmt.Fprintf(slow, "POST /v2/models/mnist-mlp-s/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 60000000\r\n\r\n{\"inputs\": ["); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	var sent atomic.Int64
	go func() {
		_ = mw.WriteField("name", "chunked")
		_ = mw.WriteField("task", "classification")
		_ = mw.WriteField("dataset", "mnist")
		fw, _ := mw.CreateFormFile("model", "big.onnx")
		chunk := make([]byte, 64<<10)
		for sent.Load() < 64<<20 {
			n, err := fw.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		_ = mw.Close()
		_ = pw.Close()
	}()
	req, err := http.NewRequestWithContext(c, "POST", "http://"+s.addr+"/v1/models", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pr.CloseWithError(io.ErrClosedPipe)
	if resp.StatusCode != 413 || !strings.Contains(string(msg), "--max-upload") {
		t.Errorf("chunked upload over the limit: %d %s; want 413 naming --max-upload", resp.StatusCode, msg)
	}
	if n := sent.Load(); n > 32<<20 {
		t.Errorf("the client got %d bytes out before the refusal of a 3 MB limit", n)
	}
	if _, err := s.c.Infer(c, "mnist-mlp-s", client.InferInput{Name: "input", Shape: []int64{1, 1, 28, 28}, Datatype: "FP32", Data: make([]float32, 784)}, nil); err != nil {
		t.Errorf("the server does not serve beside a slow client and after a refused upload: %v", err)
	}
}

// TestCLIRegisterErrorSaysWhatToDo: the CLI prints the server's message and
// exits non-zero; without a server it says how to start one.
func TestCLIRegisterErrorSaysWhatToDo(t *testing.T) {
	s := startServer(t, t.TempDir())
	notONNX := filepath.Join(t.TempDir(), "x.onnx")
	_ = os.WriteFile(notONNX, []byte("hello"), 0o600)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(infaasBinary(t), args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	out, err := run("register", "--server", s.addr, "--name", "x", "--task", "classification", "--dataset", "mnist", "--file", notONNX, "--accuracy", "50")
	if err == nil || !strings.Contains(out, "not an ONNX model") || !strings.Contains(out, "HTTP 400") {
		t.Fatalf("err %v, output %q", err, out)
	}
	out, err = run("models", "--server", freeAddr(t))
	if err == nil || !strings.Contains(out, "infaas serve") {
		t.Fatalf("without a server: err %v, output %q; want a hint to start one", err, out)
	}
}

func ptr[T any](v T) *T { return &v }

func asError(err error, target **client.Error) bool {
	e, ok := err.(*client.Error)
	if ok {
		*target = e
	}
	return ok
}

// residentBytes is a process's resident memory (VmRSS).
func residentBytes(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
