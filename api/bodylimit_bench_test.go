package api

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The benchmarks here measure memory, not speed: what the server holds
// while bodies arrive, at its peak, and what it keeps once they are gone.
// Each reports
//
//	peak-heap-MiB       the largest HeapInuse seen while requests ran
//	after-heap-MiB      HeapInuse once the requests are over, after a GC
//	after-retained-MiB  heap memory still taken from the OS then, after
//	                    debug.FreeOSMemory (HeapSys − HeapReleased)
//
// and its own figures besides. Client and server share the process; the
// clients stream from one shared buffer and allocate next to nothing, so
// the heap is the server's. Run them one iteration at a time:
//
//	go test -run '^$' -bench 'SlowClients|LargeUpload|LargeInference' -benchtime 1x -benchmem ./api/

const mib = 1 << 20

// heapPeak samples HeapInuse until stopped and keeps the largest value.
type heapPeak struct {
	stop chan struct{}
	done chan uint64
}

func sampleHeap() *heapPeak {
	p := &heapPeak{stop: make(chan struct{}), done: make(chan uint64)}
	go func() {
		var peak uint64
		var ms runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-p.stop:
				p.done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// peak stops the sampling and returns the largest HeapInuse seen.
func (p *heapPeak) peak() uint64 {
	close(p.stop)
	return <-p.done
}

// settle collects the garbage, gives free memory back to the OS and returns
// what the heap still uses and what it still holds from the OS.
func settle() (inuse, retained uint64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.HeapSys - ms.HeapReleased
}

// handlerCount counts the requests h has taken and those still running,
// so that a benchmark measures what is retained only once every handler
// has returned.
type handlerCount struct {
	h                http.Handler
	started, running atomic.Int64
}

func (c *handlerCount) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.started.Add(1)
	c.running.Add(1)
	defer c.running.Add(-1)
	c.h.ServeHTTP(w, r)
}

// waitIdle waits until want requests have been taken and none is running.
func (c *handlerCount) waitIdle(b *testing.B, want int64) {
	for deadline := time.Now().Add(30 * time.Second); c.started.Load() < want || c.running.Load() > 0; {
		if time.Now().After(deadline) {
			b.Fatalf("handlers: %d of %d started, %d still running", c.started.Load(), want, c.running.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkSlowClients has 20 clients each announce a 64 MiB inference body,
// as large as the server allows, and trickle it, 64 KiB every 10 ms, for
// 2 s; then they hang up. A server that sized its buffers from
// Content-Length would hold 20 × 64 MiB = 1280 MiB from the first byte;
// this one should hold about what it has read: held-MiB/client (the peak
// over the idle heap, per client) against read-MiB/client (what the server
// read from each). The buffer grows by doubling, and the buffers it
// outgrew are garbage until the next GC, so held may reach a few times
// read; it must stay far from 64.
func BenchmarkSlowClients(b *testing.B) {
	const (
		clients   = 20
		announced = serveMaxInferBody
		every     = 10 * time.Millisecond
		trickle   = 2 * time.Second
	)
	mux := http.NewServeMux()
	RegisterInference(mux, &fakeBackend{}, serveMaxInferBody)
	hc := &handlerCount{h: mux}
	srv, cl := startServed(b, hc)
	addr := srv.Listener.Addr().String()
	head := fmt.Sprintf("POST /v2/models/resnet50/infer HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, announced)

	var peak, read, base, after, retained uint64
	for i := range b.N {
		base, _ = settle()
		read0 := cl.read.Load()
		sampler := sampleHeap()
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close() // the client hangs up mid-body
				end := time.Now().Add(trickle)
				c.SetWriteDeadline(end.Add(5 * time.Second))
				if _, err := io.WriteString(c, head); err != nil {
					b.Error(err)
					return
				}
				tick := time.NewTicker(every)
				defer tick.Stop()
				for time.Now().Before(end) {
					if _, err := c.Write(junk); err != nil {
						b.Error(err)
						return
					}
					<-tick.C
				}
			})
		}
		wg.Wait()
		hc.waitIdle(b, int64(clients*(i+1)))
		peak = max(peak, sampler.peak())
		read = uint64(cl.read.Load() - read0)
		after, retained = settle()
	}
	b.ReportMetric(float64(peak)/mib, "peak-heap-MiB")
	b.ReportMetric(float64(peak-min(base, peak))/mib/clients, "held-MiB/client")
	b.ReportMetric(float64(read)/mib/clients, "read-MiB/client")
	b.ReportMetric(float64(after)/mib, "after-heap-MiB")
	b.ReportMetric(float64(retained)/mib, "after-retained-MiB")
	// The hardening target: 20 slow clients never make the server hold
	// 1 GiB (sized from Content-Length it would hold 1280 MiB).
	if peak >= 1<<30 {
		b.Fatalf("%d slow clients announcing %d MiB each took the heap to %.0f MiB: bodies are sized from what is announced, not what arrives", clients, announced>>20, float64(peak)/mib)
	}
}

// zeros is an endless body that allocates nothing.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// measureOne runs one request per iteration and reports the heap's peak
// while it runs and what is left once it is over, with body-MiB, the
// body's size, to compare the peak with.
func measureOne(b *testing.B, hc *handlerCount, body int64, do func()) {
	var peak, after, retained uint64
	for i := range b.N {
		settle()
		sampler := sampleHeap()
		do()
		hc.waitIdle(b, int64(i+1))
		peak = max(peak, sampler.peak())
		after, retained = settle()
	}
	b.ReportMetric(float64(body)/mib, "body-MiB")
	b.ReportMetric(float64(peak)/mib, "peak-heap-MiB")
	b.ReportMetric(float64(after)/mib, "after-heap-MiB")
	b.ReportMetric(float64(retained)/mib, "after-retained-MiB")
}

// BenchmarkLargeUpload registers a 200 MiB model under cmd/infaas serve's
// default --max-upload of 256 MiB. The registrar takes it and keeps
// nothing, so once the request is over its memory should be returned: the
// upload must be held whole while it is parsed, and then no more.
func BenchmarkLargeUpload(b *testing.B) {
	const model = 200 << 20
	mux := http.NewServeMux()
	reg := &acceptingRegistrar{}
	(&Management{Registrar: reg, MaxUploadBytes: 256 << 20}).Register(mux)
	hc := &handlerCount{h: mux}
	srv, _ := startServed(b, hc)
	prefix := "--" + uploadBoundary + "\r\n" + `Content-Disposition: form-data; name="name"` + "\r\n\r\nbig\r\n" + modelPartHead
	measureOne(b, hc, model, func() {
		req, err := http.NewRequest("POST", srv.URL+"/v1/models",
			io.MultiReader(strings.NewReader(prefix), io.LimitReader(zeros{}, model), strings.NewReader(uploadTail)))
		if err != nil {
			b.Fatal(err)
		}
		req.ContentLength = int64(len(prefix) + model + len(uploadTail))
		req.Header.Set("Content-Type", uploadContentType)
		res, err := srv.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		msg, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusAccepted {
			b.Fatalf("status %d: %s", res.StatusCode, msg)
		}
	})
	if int(reg.submitted.Load()) != b.N {
		b.Fatalf("%d registrations submitted, want %d", reg.submitted.Load(), b.N)
	}
}

// BenchmarkLargeInference sends one inference body as large as cmd/infaas
// serve allows (64 MiB), a binary tensor; the backend answers with one
// number. The body is held while it is decoded and run, and then returned.
func BenchmarkLargeInference(b *testing.B) {
	const body = serveMaxInferBody
	fb := &fakeBackend{respond: func(*InferRequest) *InferResponse {
		return &InferResponse{Outputs: []Tensor{tensor("y", "FP32", []int64{1}, rawFP32(1))}}
	}}
	mux := http.NewServeMux()
	RegisterInference(mux, fb, serveMaxInferBody)
	hc := &handlerCount{h: mux}
	srv, _ := startServed(b, hc)
	// The tensor takes what the JSON header leaves of the body.
	header := func(n int) string {
		return `{"inputs":[{"name":"x","datatype":"UINT8","shape":[` + strconv.Itoa(n) + `],"parameters":{"binary_data_size":` + strconv.Itoa(n) + `}}]}`
	}
	n := body - len(header(body))
	h := header(n)
	measureOne(b, hc, body, func() {
		req, err := http.NewRequest("POST", srv.URL+"/v2/models/resnet50/infer",
			io.MultiReader(strings.NewReader(h), io.LimitReader(zeros{}, int64(n))))
		if err != nil {
			b.Fatal(err)
		}
		req.ContentLength = int64(len(h) + n)
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set(headerJSONLength, strconv.Itoa(len(h)))
		res, err := srv.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		msg, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("status %d: %s", res.StatusCode, msg)
		}
		// fakeBackend keeps the last request, whose tensor shares the
		// body's memory; forget it, so that what is left is the server's.
		fb.mu.Lock()
		fb.last = nil
		fb.mu.Unlock()
	})
}
