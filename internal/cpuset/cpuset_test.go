package cpuset

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		out  string
	}{
		{"0", []int{0}, "0"},
		{"0-1", []int{0, 1}, "0-1"},
		{"3,0-1", []int{0, 1, 3}, "0-1,3"},
		{"1,1,0", []int{0, 1}, "0-1"},
	} {
		got, err := Parse(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if f := Format(got); f != tc.out {
			t.Errorf("Format(%v) = %q, want %q", got, f, tc.out)
		}
	}
	for _, bad := range []string{"", "a", "1-0", "0,", "-1", "99999"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestPinProcess(t *testing.T) {
	before, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := PinProcess(before); err != nil {
			t.Errorf("restore affinity: %v", err)
		}
	})
	one := before[:1]
	if err := PinProcess(one); err != nil {
		t.Fatal(err)
	}
	got, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, one) {
		t.Fatalf("after pinning to %v the thread may run on %v", one, got)
	}
}

// TestPinProcessWhileThreadsAppear: threads created while the pins are set
// (by threads not pinned yet) end up pinned too, and so does every child
// process forked afterwards, whichever thread forks it. One pass over the
// threads left some out; a profiler child forked from one measured a 1-core
// class on every core.
func TestPinProcessWhileThreadsAppear(t *testing.T) {
	before, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	if len(before) < 2 {
		t.Fatalf("this test needs 2 CPUs to tell a pinned thread from another; this process may use %v", before)
	}
	t.Cleanup(func() {
		if err := PinProcess(before); err != nil {
			t.Errorf("restore affinity: %v", err)
		}
	})
	one := before[len(before)-1:]
	for round := range 20 {
		if err := PinProcess(before); err != nil {
			t.Fatal(err)
		}
		// Goroutines that end locked to their thread make the runtime
		// destroy that thread and start new ones, from whichever thread
		// needs one next.
		stop := make(chan struct{})
		var churn sync.WaitGroup
		for range 8 {
			churn.Add(1)
			go func() {
				defer churn.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					done := make(chan struct{})
					go func() { runtime.LockOSThread(); close(done) }()
					<-done
				}
			}()
		}
		err := PinProcess(one)
		close(stop)
		churn.Wait()
		if err != nil {
			t.Fatal(err)
		}
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			tid, _ := strconv.Atoi(task.Name())
			var set unix.CPUSet
			if err := unix.SchedGetaffinity(tid, &set); err != nil {
				continue // exited
			}
			if set.Count() != 1 || !set.IsSet(one[0]) {
				t.Fatalf("round %d: thread %d may run on %d CPUs after pinning to %v", round, tid, set.Count(), one)
			}
		}
		// Children forked from several goroutines (so several threads)
		// inherit the pin.
		var kids sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			kids.Add(1)
			go func() {
				defer kids.Done()
				out, err := exec.Command("cat", "/proc/self/status").Output()
				if err != nil {
					errs <- err
					return
				}
				m := allowedList.FindSubmatch(out)
				if m == nil {
					errs <- fmt.Errorf("no Cpus_allowed_list in a child's status:\n%s", out)
				} else if got := string(m[1]); got != Format(one) {
					errs <- fmt.Errorf("round %d: a child may run on CPUs %s, want %s", round, got, Format(one))
				}
			}()
		}
		kids.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}

var allowedList = regexp.MustCompile(`(?m)^Cpus_allowed_list:\s*(\S+)$`)
