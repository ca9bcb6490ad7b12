//go:build !linux

package promotion

import "io/fs"

// systemRoot is nil on systems without /proc and cgroups: the cores then
// come from the runtime alone, and memory and load are not measured (a node
// reports no memory, so it never steps up; Linux is where supernodes run).
func systemRoot() fs.FS { return nil }
