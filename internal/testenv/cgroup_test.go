package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCgroupFS is the test bed's smoke test for cgroups: the machine's
// hierarchies are found, and a cgroup made in each shows the kernel's
// interface files and is removed again.
func TestCgroupFS(t *testing.T) {
	c := CgroupFS(t)
	t.Logf("cgroup v1 %v; v2 %q with %v; huge pages %v", c.V1, c.V2, c.V2Controllers, c.HugePageSizes)
	name := CgroupPrefix + "smoke-" + randomHex(t, 4)
	check := func(root, file string) {
		dir := filepath.Join(root, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("mkdir %s: %v", dir, err)
		}
		defer func() {
			if err := os.Remove(dir); err != nil {
				t.Errorf("rmdir %s: %v", dir, err)
			}
		}()
		if _, err := os.Stat(filepath.Join(dir, file)); err != nil {
			t.Errorf("new cgroup %s has no %s: %v", dir, file, err)
		}
	}
	if c.V2 != "" {
		check(c.V2, "cgroup.procs")
	}
	for controller, mount := range c.V1 {
		check(mount, "cgroup.procs")
		if controller == "memory" {
			check(mount, "memory.limit_in_bytes")
		}
	}
	for _, size := range c.HugePageSizes {
		if !strings.HasSuffix(size, "B") {
			t.Errorf("huge page size %q is not in the cgroup spelling", size)
		}
	}
}

func TestReadCgroupMounts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mountinfo")
	if err := os.WriteFile(path, []byte(strings.Join([]string{
		"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
		"32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct",
		"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
		"99 31 0:32 / /sys/fs/cgroup/deeper/memory rw,relatime - cgroup cgroup rw,memory",
		"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd",
		"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate",
	}, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := readCgroupMounts(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct", "memory": "/sys/fs/cgroup/memory"}
	for k, v := range want {
		if c.V1[k] != v {
			t.Errorf("V1[%s] = %q, want %q (all: %v)", k, c.V1[k], v, c.V1)
		}
	}
	if _, ok := c.V1["xattr"]; ok {
		t.Errorf("the mount option xattr was taken for a controller: %v", c.V1)
	}
	if c.V2 != "/sys/fs/cgroup/unified" {
		t.Errorf("V2 = %q", c.V2)
	}
	if !c.HasV1("cpu", "memory") || c.HasV1("pids") || c.HasV2("cpu") {
		t.Errorf("HasV1/HasV2 wrong for %+v", c)
	}
}
