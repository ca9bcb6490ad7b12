package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-p2p/strata/internal/transfer"
	"github.com/strata-p2p/strata/proto"
	"github.com/strata-p2p/strata/test/internal/proctest"
)

// writeRandom writes n pseudo-random bytes to dir/name and returns its hash.
func writeRandom(t testing.TB, dir, name string, n int, seed int64) [32]byte {
	t.Helper()
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	// Written beside the share folder and renamed in: a rescan must never
	// index a half-written file (its content ID would vanish a scan later).
	tmp := filepath.Join(filepath.Dir(dir), "."+name+".writing")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func fileHash(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// findCID searches from p for name and returns the content ID of the hit.
func findCID(t testing.TB, p *proc, word string) proto.ContentID {
	t.Helper()
	var cid proto.ContentID
	proctest.Eventually(t, 15*time.Second, "file "+word+" not found by search", func() bool {
		hits := p.search(word, time.Second)
		if len(hits) == 0 {
			return false
		}
		cid = hits[0].Entry.ContentID
		return true
	})
	return cid
}

// startDownload asks p's API to fetch cid without waiting for it.
func startDownload(t testing.TB, p *proc, cid proto.ContentID, name string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"content_id": cid.String(), "name": name})
	resp, err := p.HTTP().Post("http://"+p.Ready.API+"/v1/downloads", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start download: %s", resp.Status)
	}
}

func downloads(t testing.TB, p *proc) []transfer.DownloadStatus {
	var l []transfer.DownloadStatus
	p.GetJSON("/v1/downloads", &l)
	return l
}

// TestTransfers: a leaf downloads a file from two holders, one of which
// serves corrupted bytes; the file arrives verified, the liar is dropped
// with a reason, and the downloaded file becomes shared.
func TestTransfers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several processes")
	}
	bs := start(t, "bootstrap", proctest.BootstrapArgs(t)...)
	start(t, "sn", proctest.NodeArgs(t, bs.Ready.QUIC, "--role", "supernode")...)

	const size = 6 << 20
	goodDir, badDir := t.TempDir(), t.TempDir()
	want := writeRandom(t, goodDir, "payload song.bin", size, 1)
	writeRandom(t, badDir, "payload song.bin", size, 1)
	good := start(t, "good-holder", proctest.NodeArgs(t, bs.Ready.QUIC, "--role", "leaf", "--share", goodDir)...)
	bad := start(t, "lying-holder", proctest.NodeArgs(t, bs.Ready.QUIC, "--role", "leaf", "--share", badDir)...)
	getter := start(t, "getter", proctest.NodeArgs(t, bs.Ready.QUIC, "--role", "leaf", "--share", t.TempDir())...)
	for _, p := range []*proc{good, bad, getter} {
		p.WaitAttached()
	}
	proctest.Eventually(t, 15*time.Second, "both holders not found", func() bool {
		return len(getter.search("payload", time.Second)) == 2
	})
	cid := findCID(t, getter, "payload")

	// The lying holder's file is corrupted on disk after it was hashed,
	// keeping size and modification time, so it still announces the content
	// ID but serves wrong bytes.
	path := filepath.Join(badDir, "payload song.bin")
	st, _ := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < size; off += 1 << 20 {
		_, _ = f.WriteAt(bytes.Repeat([]byte{0xee}, 4096), off+100)
	}
	f.Close()
	_ = os.Chtimes(path, st.ModTime(), st.ModTime())

	out, err := proctest.CLI(t, "get", "--api", getter.Ready.API, "--json", cid.String())
	if err != nil {
		t.Fatalf("strata get: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var final transfer.DownloadStatus
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &final); err != nil {
		t.Fatalf("last line of strata get --json: %v: %q", err, lines[len(lines)-1])
	}
	if final.State != "done" || fileHash(t, final.Path) != want {
		t.Fatalf("download %+v: want done with the original bytes", final)
	}
	dropped := false
	for _, s := range final.Sources {
		if s.Peer.ID == bad.Ready.PeerID && s.State == "dropped" && strings.Contains(s.Reason, "bad piece") {
			dropped = true
		}
	}
	if !dropped {
		t.Logf("sources: %+v", final.Sources)
		t.Log("the lying holder was not used or not dropped (the good holder may have served everything)")
	}
	// No partial file is left behind, and the file is now shared by the getter.
	if parts, _ := filepath.Glob(filepath.Join(filepath.Dir(final.Path), "*.strata-part")); len(parts) != 0 {
		t.Errorf("partial files left: %v", parts)
	}
	proctest.Eventually(t, 10*time.Second, "downloaded file not shared by the getter", func() bool {
		return hasHolder(good.search("payload", time.Second), getter.Ready.PeerID) != nil
	})

	// Asking again does not fetch again.
	out, err = proctest.CLI(t, "get", "--api", getter.Ready.API, "--json", cid.String())
	if err != nil || !strings.Contains(out, `"state":"done"`) {
		t.Fatalf("second get: %v %s", err, out)
	}

	// Unknown content, and a path for an ID.
	if out, err := proctest.CLI(t, "get", "--api", getter.Ready.API, strings.Repeat("ab", 32)); err == nil {
		t.Errorf("get of unknown content succeeded: %s", out)
	}
	if _, err := proctest.CLI(t, "get", "--api", getter.Ready.API, "../../etc/passwd"); err == nil || !strings.Contains(err.Error(), "hex") {
		t.Errorf("path-like ID: %v", err)
	}
	if out, _ := proctest.CLI(t, "downloads", "--api", getter.Ready.API); !strings.Contains(out, "payload song.bin") {
		t.Errorf("strata downloads does not list the download:\n%s", out)
	}
}

// TestDownloadResumesAfterKill: the downloader is killed half-way (SIGKILL)
// and restarted on the same state; it resumes and the file verifies.
func TestDownloadResumesAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several processes")
	}
	bs := start(t, "bootstrap", proctest.BootstrapArgs(t)...)
	start(t, "sn", proctest.NodeArgs(t, bs.Ready.QUIC, "--role", "supernode")...)
	src := t.TempDir()
	const size = 40 << 20
	want := writeRandom(t, src, "slow movie.bin", size, 2)
	start(t, "holder", proctest.NodeArgs(t, bs.Ready.QUIC, "--role", "leaf", "--share", src, "--max-upload-rate", "10MB")...)

	state, dl := t.TempDir(), t.TempDir()
	args := []string{"node", "--bootstrap", bs.Ready.QUIC, "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0",
		"--state-dir", state, "--downloads", dl, "--role", "leaf", "--rescan", "200ms", "--log-format", "json"}
	getter := start(t, "getter", args...)
	getter.WaitAttached()
	cid := findCID(t, getter, "movie")
	startDownload(t, getter, cid, "slow movie.bin")
	var done uint64
	proctest.Eventually(t, 30*time.Second, "download did not get a third of the way", func() bool {
		l := downloads(t, getter)
		if len(l) == 0 {
			return false
		}
		done = l[0].Done
		return done > size/3
	})
	getter.Kill()
	if _, err := os.Stat(filepath.Join(dl, "slow movie.bin")); err == nil {
		t.Fatal("a file appeared under the final name before the download finished")
	}
	getter2 := start(t, "getter-restarted", args...)
	getter2.WaitAttached()
	var resumedAt uint64
	proctest.Eventually(t, 10*time.Second, "download not resumed after restart", func() bool {
		// After a restart the saved pieces are verified again before use.
		l := downloads(t, getter2)
		if len(l) == 0 || l[0].State == "verifying" {
			return false
		}
		resumedAt = l[0].Done
		return true
	})
	if resumedAt == 0 {
		t.Errorf("after the restart the download started from zero (it had %d bytes)", done)
	}
	var final transfer.DownloadStatus
	proctest.Eventually(t, 60*time.Second, "resumed download did not finish", func() bool {
		l := downloads(t, getter2)
		if len(l) == 0 || l[0].State != "done" {
			return false
		}
		final = l[0]
		return true
	})
	if fileHash(t, final.Path) != want {
		t.Fatal("resumed download does not match the original")
	}
	t.Logf("killed at %d MiB, resumed from %d MiB", done>>20, resumedAt>>20)
}
