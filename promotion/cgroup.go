package promotion

import (
	"bufio"
	"bytes"
	"io/fs"
	"math"
	"path"
	"strconv"
	"strings"
)

// cgroupLimits is what the control groups of the process allow it: the
// tightest limit along its cgroup's path to the hierarchy's root, since a
// parent's limit binds its children too.
type cgroupLimits struct {
	// CPUVersion and MemVersion are the cgroup versions the CPU and memory
	// limits came from: 1, 2, or 0 when no such controller was found.
	CPUVersion, MemVersion int
	// CPUQuota is the CPU quota in cores (quota / period); 0: no quota.
	CPUQuota float64
	// MemLimit is the memory limit in bytes; 0: no limit.
	MemLimit uint64
	// MemAvail is, when MemLimit is set, what is left under the tightest
	// level: limit − (usage − inactive file cache), since the kernel
	// reclaims inactive page cache before it hits the limit.
	MemAvail uint64
}

// unlimitedV1 is the least cgroup v1 memory.limit_in_bytes taken as "no
// limit": the kernel reports unlimited as the largest page-aligned int64.
const unlimitedV1 = 1 << 62

// readCgroups reads the cgroup limits of the process from root, a view of
// the filesystem at "/" (proc/self/cgroup, proc/self/mountinfo and the
// cgroup files under sys/fs/cgroup). Anything missing or malformed counts
// as "no limit": the measurement then falls back on what the runtime and
// /proc/meminfo say.
func readCgroups(root fs.FS) cgroupLimits {
	var l cgroupLimits
	if root == nil {
		return l
	}
	self, err := fs.ReadFile(root, "proc/self/cgroup")
	if err != nil {
		return l
	}
	paths := parseProcCgroup(self) // controller ("" for v2) → cgroup path
	mounts := parseMountinfo(readOrNil(root, "proc/self/mountinfo"))

	if dirs, v := controllerDirs(paths, mounts, "cpu"); v != 0 {
		for _, d := range dirs {
			if q := cpuQuotaAt(root, d, v); q > 0 && (l.CPUQuota == 0 || q < l.CPUQuota) {
				l.CPUQuota = q
			}
		}
		l.CPUVersion = v
	}
	if dirs, v := controllerDirs(paths, mounts, "memory"); v != 0 {
		found := false
		for _, d := range dirs {
			limit, avail, ok := memAt(root, d, v)
			if !ok {
				continue
			}
			if l.MemLimit == 0 || limit < l.MemLimit {
				l.MemLimit = limit
			}
			if !found || avail < l.MemAvail {
				l.MemAvail = avail
			}
			found = true
		}
		l.MemVersion = v
	}
	return l
}

func readOrNil(root fs.FS, name string) []byte {
	b, _ := fs.ReadFile(root, name)
	return b
}

// parseProcCgroup reads /proc/self/cgroup: "id:controllers:path" lines. The
// v2 line has id 0 and no controllers; it is returned under "".
func parseProcCgroup(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			out[""] = f[2]
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			out[c] = f[2]
		}
	}
	return out
}

// mount is one cgroup filesystem from /proc/self/mountinfo.
type mount struct {
	root, point string   // the mount's root within the hierarchy; where it is mounted
	v2          bool     // cgroup2, else a v1 hierarchy
	controllers []string // v1: the controllers in its super options
}

// parseMountinfo returns the cgroup mounts. A line is
//
//	id parent major:minor root mount-point options [optional...] - fstype source super-options
func parseMountinfo(b []byte) []mount {
	var out []mount
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(f) {
			continue
		}
		m := mount{root: unescapeMount(f[3]), point: unescapeMount(f[4])}
		switch f[sep+1] {
		case "cgroup2":
			m.v2 = true
		case "cgroup":
			if sep+3 < len(f) {
				m.controllers = strings.Split(f[sep+3], ",")
			}
		default:
			continue
		}
		out = append(out, m)
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// controllerDirs returns the cgroup directories (relative to the fs root)
// holding controller's files for this process, from its own cgroup up to
// the mount's root, and the cgroup version. A v1 hierarchy naming the
// controller wins over the unified (v2) one, as in the kernel's hybrid mode.
func controllerDirs(paths map[string]string, mounts []mount, controller string) ([]string, int) {
	if p, ok := paths[controller]; ok {
		point, root := "sys/fs/cgroup/"+controller, "/"
		for _, m := range mounts {
			if !m.v2 && containsStr(m.controllers, controller) {
				point, root = m.point, m.root
				break
			}
		}
		return walkUp(point, root, p), 1
	}
	if p, ok := paths[""]; ok {
		point, root := "sys/fs/cgroup", "/"
		for _, m := range mounts {
			if m.v2 {
				point, root = m.point, m.root
				break
			}
		}
		return walkUp(point, root, p), 2
	}
	return nil, 0
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// walkUp maps the cgroup path p into the mount at point (whose root within
// the hierarchy is root) and returns its directory and every parent up to
// the mount point, as fs.FS paths. A cgroup outside the mount's root (a
// container without a cgroup namespace sees the host's path) maps to the
// mount point itself, which is then the container's own cgroup.
func walkUp(point, root, p string) []string {
	point = strings.TrimPrefix(path.Clean("/"+point), "/")
	if point == "" {
		point = "."
	}
	rel := "/"
	root, p = path.Clean("/"+root), path.Clean("/"+p)
	switch {
	case root == "/":
		rel = p
	case p == root:
		rel = "/"
	case strings.HasPrefix(p, root+"/"):
		rel = strings.TrimPrefix(p, root)
	}
	var dirs []string
	for {
		dirs = append(dirs, path.Join(point, rel))
		if rel == "/" {
			return dirs
		}
		rel = path.Dir(rel)
	}
}

// cpuQuotaAt reads the CPU quota in cores at dir; 0 for none.
func cpuQuotaAt(root fs.FS, dir string, v int) float64 {
	var quota, period float64
	if v == 2 {
		f := strings.Fields(string(readOrNil(root, path.Join(dir, "cpu.max"))))
		if len(f) != 2 || f[0] == "max" {
			return 0
		}
		quota, _ = strconv.ParseFloat(f[0], 64)
		period, _ = strconv.ParseFloat(f[1], 64)
	} else {
		quota = readFloat(root, path.Join(dir, "cpu.cfs_quota_us")) // -1: none
		period = readFloat(root, path.Join(dir, "cpu.cfs_period_us"))
	}
	if quota <= 0 || period <= 0 || math.IsInf(quota, 0) || math.IsInf(period, 0) {
		return 0
	}
	return quota / period
}

// memAt reads the memory limit at dir and what is left under it; ok is
// false when dir sets no limit.
func memAt(root fs.FS, dir string, v int) (limit, avail uint64, ok bool) {
	var usage uint64
	var inactive string
	if v == 2 {
		s := strings.TrimSpace(string(readOrNil(root, path.Join(dir, "memory.max"))))
		if s == "" || s == "max" {
			return 0, 0, false
		}
		l, err := strconv.ParseUint(s, 10, 64)
		if err != nil || l == 0 {
			return 0, 0, false
		}
		limit = l
		usage = readUint(root, path.Join(dir, "memory.current"))
		inactive = "inactive_file"
	} else {
		l := readUint(root, path.Join(dir, "memory.limit_in_bytes"))
		if l == 0 || l >= unlimitedV1 {
			return 0, 0, false
		}
		limit = l
		usage = readUint(root, path.Join(dir, "memory.usage_in_bytes"))
		inactive = "total_inactive_file"
	}
	if cache := statField(readOrNil(root, path.Join(dir, "memory.stat")), inactive); cache <= usage {
		usage -= cache
	}
	if usage < limit {
		avail = limit - usage
	}
	return limit, avail, true
}

func readUint(root fs.FS, name string) uint64 {
	n, _ := strconv.ParseUint(strings.TrimSpace(string(readOrNil(root, name))), 10, 64)
	return n
}

func readFloat(root fs.FS, name string) float64 {
	x, err := strconv.ParseFloat(strings.TrimSpace(string(readOrNil(root, name))), 64)
	if err != nil {
		return 0
	}
	return x
}

// statField returns the value of key in a "key value" file (memory.stat);
// 0 when absent.
func statField(b []byte, key string) uint64 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == key {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// memAvailable reads MemAvailable from /proc/meminfo, in bytes; ok is false
// when there is no such line (a kernel before 3.14, or not Linux).
func memAvailable(root fs.FS) (uint64, bool) {
	if root == nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(readOrNil(root, "proc/meminfo")))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemAvailable:" {
			n, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0, false
			}
			if len(f) >= 3 && f[2] == "kB" {
				n *= 1024
			}
			return n, true
		}
	}
	return 0, false
}

// loadAvg1 reads the 1-minute load average from /proc/loadavg.
func loadAvg1(root fs.FS) (float64, bool) {
	if root == nil {
		return 0, false
	}
	f := strings.Fields(string(readOrNil(root, "proc/loadavg")))
	if len(f) == 0 {
		return 0, false
	}
	x, err := strconv.ParseFloat(f[0], 64)
	if err != nil || x < 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return 0, false
	}
	return x, true
}
