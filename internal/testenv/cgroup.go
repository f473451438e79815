package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// CgroupPrefix starts the name of every cgroup tests make; leftovers of
// killed test runs can be found by it.
const CgroupPrefix = "nodekit-test-"

// Cgroups describes the machine's cgroup filesystems for a test that
// creates cgroups of its own.
type Cgroups struct {
	// V1 maps each mounted cgroup v1 controller to its mount point
	// ("memory" -> "/sys/fs/cgroup/memory"). Empty on a cgroup v2 only host.
	V1 map[string]string
	// V2 is the mount point of the unified hierarchy: "/sys/fs/cgroup" on a
	// v2 host, "/sys/fs/cgroup/unified" on a hybrid one, "" if none.
	V2 string
	// V2Controllers are the controllers the unified hierarchy's root offers
	// (its cgroup.controllers); on a hybrid host only those no v1 hierarchy
	// has taken.
	V2Controllers []string
	// HugePageSizes are the machine's huge page sizes as cgroup files spell
	// them ("2MB", "1GB"), from /sys/kernel/mm/hugepages, smallest first.
	HugePageSizes []string
}

// HasV1 reports whether every named controller is mounted as cgroup v1.
func (c Cgroups) HasV1(controllers ...string) bool {
	for _, name := range controllers {
		if c.V1[name] == "" {
			return false
		}
	}
	return true
}

// HasV2 reports whether the unified hierarchy offers every named
// controller.
func (c Cgroups) HasV2(controllers ...string) bool {
	if c.V2 == "" {
		return false
	}
	for _, name := range controllers {
		if !slices.Contains(c.V2Controllers, name) {
			return false
		}
	}
	return true
}

// CgroupFS returns the machine's cgroup filesystems, after checking that
// the test runs as root and that a cgroup hierarchy is mounted and
// writable: a probe cgroup is made and removed in each. Without them the
// test is skipped, or fails under CI=true.
func CgroupFS(t testing.TB) Cgroups {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "sudo make test", "creating cgroups needs root")
	}
	c, err := readCgroupMounts("/proc/self/mountinfo")
	if err != nil {
		unavailable(t, "mount -t cgroup2 none /sys/fs/cgroup", "reading cgroup mounts: %v", err)
	}
	if len(c.V1) == 0 && c.V2 == "" {
		unavailable(t, "mount -t cgroup2 none /sys/fs/cgroup", "no cgroup filesystem is mounted")
	}
	if c.V2 != "" {
		data, err := os.ReadFile(filepath.Join(c.V2, "cgroup.controllers"))
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		c.V2Controllers = strings.Fields(string(data))
	}
	roots := []string{c.V2}
	for _, mount := range c.V1 {
		roots = append(roots, mount)
	}
	probe := CgroupPrefix + "probe-" + randomHex(t, 4)
	for _, root := range roots {
		if root == "" {
			continue
		}
		dir := filepath.Join(root, probe)
		if err := os.Mkdir(dir, 0o755); err != nil {
			unavailable(t, "sudo make test", "cgroup filesystem %s is not writable: %v", root, err)
		}
		if err := os.Remove(dir); err != nil {
			t.Fatalf("testenv: removing probe cgroup: %v", err)
		}
	}
	c.HugePageSizes, err = hugePageSizes("/sys/kernel/mm/hugepages")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("testenv: %v", err)
	}
	return c
}

// readCgroupMounts reads cgroup and cgroup2 mounts from a mountinfo file.
// Where a controller is mounted more than once, the shortest mount point
// wins, as the kubelet chooses.
func readCgroupMounts(path string) (Cgroups, error) {
	f, err := os.Open(path)
	if err != nil {
		return Cgroups{}, err
	}
	defer f.Close()
	c := Cgroups{V1: map[string]string{}}
	s := bufio.NewScanner(f)
	for s.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(s.Text(), " - ")
		if !ok {
			continue
		}
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(tail) < 3 {
			continue
		}
		mountpoint := fields[4]
		switch tail[0] {
		case "cgroup2":
			if c.V2 == "" || len(mountpoint) < len(c.V2) {
				c.V2 = mountpoint
			}
		case "cgroup":
			for _, opt := range strings.Split(tail[2], ",") {
				if notController[opt] || strings.Contains(opt, "=") {
					continue
				}
				if prev := c.V1[opt]; prev == "" || len(mountpoint) < len(prev) {
					c.V1[opt] = mountpoint
				}
			}
		}
	}
	return c, s.Err()
}

// notController are the cgroup v1 mount options that name no controller.
var notController = map[string]bool{"rw": true, "ro": true, "xattr": true, "noprefix": true,
	"clone_children": true, "cpuset_v2_mode": true, "favordynmods": true}

// hugePageSizes lists the huge page sizes of /sys/kernel/mm/hugepages
// (hugepages-2048kB) in the cgroup spelling (2MB), smallest first.
func hugePageSizes(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var kbs []int
	for _, e := range entries {
		v, ok := strings.CutPrefix(e.Name(), "hugepages-")
		if !ok {
			continue
		}
		kb, err := strconv.Atoi(strings.TrimSuffix(v, "kB"))
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", dir, e.Name(), err)
		}
		kbs = append(kbs, kb)
	}
	slices.Sort(kbs)
	sizes := make([]string, 0, len(kbs))
	for _, kb := range kbs {
		switch {
		case kb >= 1<<20 && kb%(1<<20) == 0:
			sizes = append(sizes, strconv.Itoa(kb>>20)+"GB")
		case kb >= 1<<10 && kb%(1<<10) == 0:
			sizes = append(sizes, strconv.Itoa(kb>>10)+"MB")
		default:
			sizes = append(sizes, strconv.Itoa(kb)+"KB")
		}
	}
	return sizes, nil
}
