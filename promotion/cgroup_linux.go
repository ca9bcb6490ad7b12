package promotion

import (
	"io/fs"
	"os"
)

// systemRoot is the filesystem the measurements read on this system: /proc
// and /sys/fs/cgroup hold the load, the memory and the cgroup limits.
func systemRoot() fs.FS { return os.DirFS("/") }
