// Package cgroup reads the memory limit the kernel enforces on this
// process's control group — a container's memory limit, such as a
// Kubernetes pod's resources.limits.memory — so that a worker never plans
// to fill more memory than it may use.
package cgroup

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// MemoryLimit returns the memory limit of this process's cgroup in bytes,
// and false when there is none (no cgroup file, "max", or cgroup v1's
// page-rounded "unlimited").
func MemoryLimit() (int64, bool) { return memoryLimit("/") }

// memoryLimit reads the limit under root (a test's stand-in for /): the
// cgroup v2 file of this process's group, else the v1 memory controller's.
func memoryLimit(root string) (int64, bool) {
	for _, p := range candidates(root) {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		return parse(strings.TrimSpace(string(b)))
	}
	return 0, false
}

// candidates are the files that may hold the limit, most specific first:
// the groups named in /proc/self/cgroup (v2 "0::/path", v1
// "N:...memory...:/path"), then the roots a container's namespaced view
// shows (v2, then v1's memory controller).
func candidates(root string) []string {
	var out []string
	if b, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 || parts[2] == "/" {
				continue
			}
			switch {
			case parts[0] == "0" && parts[1] == "":
				out = append(out, filepath.Join(root, "sys/fs/cgroup", parts[2], "memory.max"))
			case slices.Contains(strings.Split(parts[1], ","), "memory"):
				out = append(out, filepath.Join(root, "sys/fs/cgroup/memory", parts[2], "memory.limit_in_bytes"))
			}
		}
	}
	return append(out, filepath.Join(root, "sys/fs/cgroup/memory.max"),
		filepath.Join(root, "sys/fs/cgroup/memory/memory.limit_in_bytes"))
}

// unlimitedV1 is where cgroup v1 reports "no limit": the largest int64
// rounded down to a page; anything this large is no limit.
const unlimitedV1 = 1 << 62

func parse(s string) (int64, bool) {
	if s == "max" || s == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= unlimitedV1 {
		return 0, false
	}
	return n, true
}
