// Package cpuset parses CPU lists ("0-1,3") and pins the whole process to
// a set of CPUs, so that local workers of different hardware classes
// really have different hardware on one machine.
package cpuset

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Parse reads a CPU list in the kernel's format: comma-separated CPU
// numbers and inclusive ranges, e.g. "0", "0-1", "0,2-3". The result is
// sorted and without repeats.
func Parse(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("cpu list %q: empty element", s)
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("cpu list %q: %q is not a CPU number", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("cpu list %q: %q is not a range low-high", s, part)
			}
		}
		if b >= 4096 {
			return nil, fmt.Errorf("cpu list %q: CPU %d is out of range", s, b)
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Format writes cpus as a CPU list ("0-1,3").
func Format(cpus []int) string {
	var parts []string
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.Itoa(cpus[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", cpus[i], cpus[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// Allowed lists the CPUs this process may run on now.
func Allowed() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("read cpu affinity: %w", err)
	}
	var out []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// PinProcess restricts every thread of this process to cpus. Affinity is
// per thread on Linux and a new thread inherits its creator's, so setting
// it on every existing thread covers the threads created later too (the
// Go runtime's and ONNX Runtime's), and a child process forked from any of
// them. Threads are created while the pins are set, by threads not pinned
// yet, so one pass over /proc/self/task can leave one out (a profiler
// child forked from it then ran on every core): the passes repeat until one
// finds every thread already pinned. Call it early, before ONNX Runtime
// starts its thread pools.
func PinProcess(cpus []int) error {
	if len(cpus) == 0 {
		return fmt.Errorf("pin: no CPUs given")
	}
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	for range maxPinPasses {
		changed, err := pinPass(&set)
		if err != nil {
			return fmt.Errorf("pin to CPUs %s: %w", Format(cpus), err)
		}
		if !changed {
			return nil
		}
	}
	return fmt.Errorf("pin to CPUs %s: threads still appearing unpinned after %d passes", Format(cpus), maxPinPasses)
}

// maxPinPasses bounds PinProcess's passes; two or three are usual.
const maxPinPasses = 100

// pinPass sets set on every thread of this process whose affinity differs
// and says whether it found one. Once a pass finds none, every thread that
// exists was pinned before the pass began, and so is every thread created
// since: all of them were created by pinned threads.
func pinPass(set *unix.CPUSet) (changed bool, err error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return false, fmt.Errorf("list threads: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		var cur unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &cur); err == unix.ESRCH {
			continue // the thread exited
		} else if err != nil {
			return false, err
		}
		if cur == *set {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
			return false, err
		}
		changed = true
	}
	return changed, nil
}
