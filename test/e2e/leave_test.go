package e2e

import (
	"syscall"
	"testing"
	"time"

	"github.com/strata-p2p/strata/test/internal/proctest"
)

// TestLeafLeavesGracefully: a leaf stopped with SIGTERM says goodbye, so its
// files leave its supernode's index at once, not after the connection's
// idle timeout (about 2 s) as with kill -9.
func TestLeafLeavesGracefully(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several processes")
	}
	bs := start(t, "bootstrap", proctest.BootstrapArgs(t)...)
	sn := start(t, "sn", proctest.NodeArgs(t, bs.Ready.QUIC, "--role", "supernode")...)
	share := t.TempDir()
	writeMP3(t, share, "farewell tune.mp3", "Leaving", "Farewell")
	leaf := start(t, "leaf", proctest.NodeArgs(t, bs.Ready.QUIC, "--role", "leaf", "--share", share)...)
	leaf.WaitAttached()
	proctest.Eventually(t, 10*time.Second, "leaf's file not indexed", func() bool {
		return sn.Status().Supernode.IndexFiles == 1
	})
	_ = leaf.Cmd.Process.Signal(syscall.SIGTERM)
	took := proctest.Eventually(t, 5*time.Second, "leaf's file still indexed after it left", func() bool {
		return sn.Status().Supernode.IndexFiles == 0
	})
	t.Logf("files gone %v after SIGTERM", took)
	// The idle timeout alone would take about 2 s.
	if took > time.Second {
		t.Errorf("files took %v to leave the index; the goodbye should make it immediate", took)
	}
}
