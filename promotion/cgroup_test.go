package promotion

import (
	"testing"
	"testing/fstest"
)

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

// v2Mount is the mountinfo line of a cgroup2 hierarchy at /sys/fs/cgroup.
const v2Mount = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"

func TestCgroupV2Quota(t *testing.T) {
	root := fstest.MapFS{
		"proc/self/cgroup":    file("0::/system.slice/strata.service\n"),
		"proc/self/mountinfo": file("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n" + v2Mount),
		"sys/fs/cgroup/system.slice/strata.service/cpu.max":        file("150000 100000\n"),
		"sys/fs/cgroup/system.slice/strata.service/memory.max":     file("536870912\n"),
		"sys/fs/cgroup/system.slice/strata.service/memory.current": file("209715200\n"),
		"sys/fs/cgroup/system.slice/strata.service/memory.stat":    file("anon 100\nfile 104857600\ninactive_file 104857600\nactive_file 0\n"),
		// A parent with a tighter CPU limit and a looser memory one.
		"sys/fs/cgroup/system.slice/cpu.max":        file("50000 100000\n"),
		"sys/fs/cgroup/system.slice/memory.max":     file("max\n"),
		"sys/fs/cgroup/system.slice/memory.current": file("999999999\n"),
		"sys/fs/cgroup/cpu.max":                     file("max 100000\n"),
	}
	l := readCgroups(root)
	if l.CPUVersion != 2 || l.MemVersion != 2 {
		t.Fatalf("versions = %d/%d, want 2/2", l.CPUVersion, l.MemVersion)
	}
	if l.CPUQuota != 0.5 {
		t.Errorf("CPU quota = %v cores, want the parent's 0.5", l.CPUQuota)
	}
	if l.MemLimit != 512<<20 {
		t.Errorf("memory limit = %d, want 512 MiB", l.MemLimit)
	}
	// 512 MiB − (200 MiB used − 100 MiB inactive cache) = 412 MiB.
	if want := uint64(412 << 20); l.MemAvail != want {
		t.Errorf("memory available = %d, want %d", l.MemAvail, want)
	}
}

func TestCgroupV2Max(t *testing.T) {
	root := fstest.MapFS{
		"proc/self/cgroup":             file("0::/\n"),
		"proc/self/mountinfo":          file(v2Mount),
		"sys/fs/cgroup/cpu.max":        file("max 100000\n"),
		"sys/fs/cgroup/memory.max":     file("max\n"),
		"sys/fs/cgroup/memory.current": file("12345\n"),
	}
	l := readCgroups(root)
	if l.CPUQuota != 0 || l.MemLimit != 0 {
		t.Fatalf("limits = %+v, want none for \"max\"", l)
	}
	if got := availableCores(l, 4, 8); got != 4 {
		t.Errorf("cores without a quota = %v, want GOMAXPROCS 4", got)
	}
}

// TestCgroupV2Namespace: inside a container with a cgroup namespace the
// process sees "0::/" and the hierarchy's root is mounted at /sys/fs/cgroup.
// Without a namespace it sees the host path, outside the mount's root: the
// mount point itself is its cgroup.
func TestCgroupV2Namespace(t *testing.T) {
	for _, self := range []string{"0::/\n", "0::/docker/abc123\n"} {
		root := fstest.MapFS{
			"proc/self/cgroup":      file(self),
			"proc/self/mountinfo":   file("30 23 0:26 /docker/abc123 /sys/fs/cgroup ro - cgroup2 cgroup rw\n"),
			"sys/fs/cgroup/cpu.max": file("200000 100000\n"),
		}
		if l := readCgroups(root); l.CPUQuota != 2 {
			t.Errorf("%q: quota = %v, want 2", self, l.CPUQuota)
		}
	}
}

func TestCgroupV1(t *testing.T) {
	root := fstest.MapFS{
		"proc/self/cgroup": file("12:memory:/kubepods/pod1/c1\n4:cpu,cpuacct:/kubepods/pod1/c1\n1:name=systemd:/kubepods/pod1/c1\n0::/\n"),
		"proc/self/mountinfo": file(
			"40 30 0:35 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n" +
				"41 30 0:36 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n" +
				"42 30 0:37 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"),
		"sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/c1/cpu.cfs_quota_us":  file("250000\n"),
		"sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/c1/cpu.cfs_period_us": file("100000\n"),
		"sys/fs/cgroup/cpu,cpuacct/kubepods/cpu.cfs_quota_us":          file("-1\n"),
		"sys/fs/cgroup/cpu,cpuacct/kubepods/cpu.cfs_period_us":         file("100000\n"),
		"sys/fs/cgroup/memory/kubepods/pod1/c1/memory.limit_in_bytes":  file("1073741824\n"),
		"sys/fs/cgroup/memory/kubepods/pod1/c1/memory.usage_in_bytes":  file("536870912\n"),
		"sys/fs/cgroup/memory/kubepods/pod1/c1/memory.stat":            file("cache 0\ntotal_inactive_file 268435456\n"),
		"sys/fs/cgroup/memory/memory.limit_in_bytes":                   file("9223372036854771712\n"), // unlimited
	}
	l := readCgroups(root)
	if l.CPUVersion != 1 || l.MemVersion != 1 {
		t.Fatalf("versions = %d/%d, want 1/1 (v1 controllers win in hybrid mode)", l.CPUVersion, l.MemVersion)
	}
	if l.CPUQuota != 2.5 {
		t.Errorf("quota = %v, want 2.5", l.CPUQuota)
	}
	if l.MemLimit != 1<<30 || l.MemAvail != 768<<20 {
		t.Errorf("memory = limit %d avail %d, want 1 GiB and 768 MiB", l.MemLimit, l.MemAvail)
	}
	if got := availableCores(l, 8, 8); got != 2.5 {
		t.Errorf("cores = %v, want the quota 2.5", got)
	}
	if got := availableCores(l, 2, 8); got != 2 {
		t.Errorf("cores = %v, want GOMAXPROCS 2 under a quota of 2.5", got)
	}
}

// TestCgroupV1NoMountinfo: without mountinfo the usual mount points are
// assumed.
func TestCgroupV1NoMountinfo(t *testing.T) {
	root := fstest.MapFS{
		"proc/self/cgroup":                    file("3:cpu:/\n"),
		"sys/fs/cgroup/cpu/cpu.cfs_quota_us":  file("50000\n"),
		"sys/fs/cgroup/cpu/cpu.cfs_period_us": file("100000\n"),
	}
	if l := readCgroups(root); l.CPUQuota != 0.5 {
		t.Errorf("quota = %v, want 0.5", l.CPUQuota)
	}
}

func TestCgroupMissingOrGarbage(t *testing.T) {
	for name, root := range map[string]fstest.MapFS{
		"empty": {},
		"garbage": {
			"proc/self/cgroup":         file("nonsense\n\x00\x01::::\n0::/../../etc\n"),
			"proc/self/mountinfo":      file("short line\n1 2 3 4 5 6 - \n"),
			"sys/fs/cgroup/cpu.max":    file("lots of 100000\n"),
			"sys/fs/cgroup/memory.max": file("-5\n"),
		},
		"zero period": {
			"proc/self/cgroup":      file("0::/\n"),
			"sys/fs/cgroup/cpu.max": file("50000 0\n"),
		},
	} {
		if l := readCgroups(root); l.CPUQuota != 0 || l.MemLimit != 0 {
			t.Errorf("%s: limits = %+v, want none", name, l)
		}
	}
	if l := readCgroups(nil); l != (cgroupLimits{}) {
		t.Errorf("nil root: %+v", l)
	}
}

func TestMountinfoEscapes(t *testing.T) {
	ms := parseMountinfo([]byte(`30 23 0:26 / /sys/fs/my\040cgroup rw - cgroup2 cgroup2 rw` + "\n"))
	if len(ms) != 1 || ms[0].point != "/sys/fs/my cgroup" || !ms[0].v2 {
		t.Fatalf("mounts = %+v", ms)
	}
}

func TestMemoryAvailable(t *testing.T) {
	meminfo := file("MemTotal:        8000000 kB\nMemFree:          100000 kB\nMemAvailable:    2000000 kB\n")
	root := fstest.MapFS{"proc/meminfo": meminfo}
	if got, ok := memAvailable(root); !ok || got != 2000000*1024 {
		t.Fatalf("MemAvailable = %d %v", got, ok)
	}
	// No cgroup limit: the host's figure.
	if got := availableMem(root, cgroupLimits{}); got != 2000000*1024 {
		t.Errorf("no limit: %d", got)
	}
	// A cgroup leaving less wins; one leaving more does not.
	if got := availableMem(root, cgroupLimits{MemLimit: 1 << 30, MemAvail: 300 << 20}); got != 300<<20 {
		t.Errorf("tight cgroup: %d, want 300 MiB", got)
	}
	if got := availableMem(root, cgroupLimits{MemLimit: 64 << 30, MemAvail: 60 << 30}); got != 2000000*1024 {
		t.Errorf("loose cgroup: %d, want MemAvailable", got)
	}
	// No meminfo: the cgroup's figure, or nothing.
	if got := availableMem(fstest.MapFS{}, cgroupLimits{MemLimit: 1 << 30, MemAvail: 1 << 29}); got != 1<<29 {
		t.Errorf("cgroup only: %d", got)
	}
	if got := availableMem(fstest.MapFS{}, cgroupLimits{}); got != 0 {
		t.Errorf("nothing known: %d", got)
	}
}

func TestLoadAvg(t *testing.T) {
	if got, ok := loadAvg1(fstest.MapFS{"proc/loadavg": file("1.50 0.80 0.40 2/345 6789\n")}); !ok || got != 1.5 {
		t.Errorf("load = %v %v", got, ok)
	}
	if _, ok := loadAvg1(fstest.MapFS{"proc/loadavg": file("NaN 1 1\n")}); ok {
		t.Error("NaN load accepted")
	}
}
