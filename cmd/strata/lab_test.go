package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLabBadInput: impossible requests are refused with what to do, before
// any process starts.
func TestLabBadInput(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.lab")
	if err := os.WriteFile(bad, []byte("nodes 2\n# fine so far\nteleport node1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lab", "--nodes", "0"}, "--nodes 0: a lab needs at least one node"},
		{[]string{"lab", "--nodes", "-3"}, "--nodes -3"},
		{[]string{"lab", "--script", bad}, bad + `:3: unknown step "teleport"`},
		{[]string{"lab", "--script", filepath.Join(t.TempDir(), "missing.lab")}, "--script: open"},
		{[]string{"lab", "--api-port", "99999"}, "--api-port 99999"},
		{[]string{"lab", "share"}, "give --dir or set STRATA_SHARE"},
		{[]string{"lab", "share", "--dir", t.TempDir(), "--index", "-1"}, "node index -1"},
	} {
		t.Setenv("STRATA_SHARE", "")
		_, stderr, code := runCmd(t, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("strata %v: exit %d, %q; want an error with %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestLabShare: `strata lab share` fills an empty folder and leaves a full
// one alone (a restarted container keeps its files).
func TestLabShare(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "share")
	if _, stderr, code := runCmd(t, "lab", "share", "--dir", dir, "--index", "2"); code != 0 || !strings.Contains(stderr, "files written") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	ents, err := os.ReadDir(filepath.Join(dir, "Music"))
	if err != nil || len(ents) == 0 {
		t.Fatalf("no music written: %v", err)
	}
	if _, stderr, code := runCmd(t, "lab", "share", "--dir", dir, "--index", "5"); code != 0 || !strings.Contains(stderr, "0 files written") {
		t.Fatalf("a full folder was refilled: exit %d: %s", code, stderr)
	}
}
