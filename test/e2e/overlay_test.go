package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-p2p/strata/proto"
	"github.com/strata-p2p/strata/test/internal/proctest"
)

// TestOverlay: a bootstrap, three supernodes and six leaves on loopback. A
// leaf finds a file held by a leaf two supernode hops away; a file removed
// from a share folder stops being found; a killed leaf's files disappear.
func TestOverlay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ten processes")
	}
	bs := start(t, "bootstrap", proctest.BootstrapArgs(t)...)
	bsAddr := bs.Ready.QUIC

	// Supernodes one after another with mesh degree 1: each new one links to
	// one that exists, so the mesh is a tree (a line or a star of three),
	// and some pair of supernodes is two hops apart.
	var sns []*proc
	for i := range 3 {
		sn := start(t, fmt.Sprintf("sn%d", i+1), proctest.NodeArgs(t, bsAddr, "--role", "supernode", "--mesh-degree", "1", "--max-leaves", "2")...)
		sns = append(sns, sn)
		if i > 0 {
			proctest.Eventually(t, 15*time.Second, sn.Name+" has no mesh neighbour", func() bool {
				return len(sn.Status().Supernode.Neighbours) >= 1
			})
		}
	}
	neighbours := map[proto.PeerID]map[proto.PeerID]bool{}
	byID := map[proto.PeerID]*proc{}
	for _, sn := range sns {
		byID[sn.Ready.PeerID] = sn
		neighbours[sn.Ready.PeerID] = map[proto.PeerID]bool{}
	}
	for _, sn := range sns {
		for _, nb := range sn.Status().Supernode.Neighbours {
			neighbours[sn.Ready.PeerID][nb.ID] = true
			neighbours[nb.ID][sn.Ready.PeerID] = true
		}
	}

	// Six leaves, each sharing two files with words unique to it.
	type leafProc struct {
		p     *proc
		share string
		word  string
		sn    proto.PeerID
	}
	var leaves []*leafProc
	for i := range 6 {
		share := t.TempDir()
		word := fmt.Sprintf("uniqword%d", i)
		writeMP3(t, share, fmt.Sprintf("Artist%d - %s song.mp3", i, word), fmt.Sprintf("Artist%d", i), word+" title")
		writeMP3(t, share, fmt.Sprintf("common tune %d.mp3", i), "Common", "Common tune")
		// One supernode each: the test counts leaves per supernode and hops.
		p := start(t, fmt.Sprintf("leaf%d", i+1), proctest.NodeArgs(t, bsAddr, "--role", "leaf", "--supernodes", "1", "--share", share)...)
		leaves = append(leaves, &leafProc{p: p, share: share, word: word})
	}
	for _, l := range leaves {
		proctest.Eventually(t, 15*time.Second, l.p.Name+" did not attach", func() bool {
			st := l.p.Status()
			if st.Attached == nil {
				return false
			}
			l.sn = st.Attached.Supernode.ID
			return true
		})
	}
	for _, sn := range sns {
		proctest.Eventually(t, 10*time.Second, sn.Name+" did not index its leaves' files", func() bool {
			s := sn.Status().Supernode
			return len(s.Leaves) == 2 && s.IndexFiles == 4
		})
	}

	// Find an asker and a holder whose supernodes are two hops apart.
	var asker, holder *leafProc
	for _, a := range leaves {
		for _, h := range leaves {
			if a.sn != h.sn && !neighbours[a.sn][h.sn] {
				asker, holder = a, h
			}
		}
	}
	if asker == nil {
		t.Fatalf("no two supernodes are two hops apart; mesh: %v", neighbours)
	}
	hits := asker.p.search(holder.word, 3*time.Second)
	h := hasHolder(hits, holder.p.Ready.PeerID)
	if h == nil {
		t.Fatalf("search for %q from %s found %d hits, none from %s", holder.word, asker.p.Name, len(hits), holder.p.Name)
	}
	if h.Hops != 2 {
		t.Errorf("hit came %d supernode hops, want 2", h.Hops)
	}
	if len(h.Holder.Addrs) == 0 || h.Entry.Bitrate != 128 || h.Entry.SampleRate != 44100 || h.Entry.Duration == 0 {
		t.Errorf("hit lacks holder address or media fields: %+v", h)
	}
	// Every leaf's common file is found from anywhere (all 6, or 5 without the asker's own).
	if common := asker.p.search("common tune", 3*time.Second); len(common) != 5 {
		t.Errorf("search for the common tune found %d hits, want 5 (every other leaf)", len(common))
	}

	// The CLI prints the same through the API, as JSON lines.
	out, err := proctest.CLI(t, "search", "--api", asker.p.Ready.API, "--json", "--timeout", "2s", holder.word)
	if err != nil || !strings.Contains(out, holder.p.Ready.PeerID.String()) {
		t.Errorf("strata search --json: %v\n%s", err, out)
	}

	// A removed file stops being found.
	matches, _ := filepath.Glob(filepath.Join(holder.share, "*"+holder.word+"*"))
	if err := os.Remove(matches[0]); err != nil {
		t.Fatal(err)
	}
	took := proctest.Eventually(t, 10*time.Second, "removed file still found", func() bool {
		return hasHolder(asker.p.search(holder.word, time.Second), holder.p.Ready.PeerID) == nil
	})
	t.Logf("removed file gone from results after %v", took)

	// A killed leaf's files disappear within a few seconds.
	var victim *leafProc
	for _, l := range leaves {
		if l != asker && l != holder {
			victim = l
		}
	}
	victim.p.Kill()
	took = proctest.Eventually(t, 10*time.Second, "killed leaf's files still found", func() bool {
		return hasHolder(asker.p.search(victim.word, time.Second), victim.p.Ready.PeerID) == nil
	})
	t.Logf("killed leaf's files gone from results after %v", took)
	if took > 6*time.Second {
		t.Errorf("killed leaf's files took %v to disappear, want a few seconds", took)
	}

	// status works against a supernode and against the bootstrap server.
	if out, err := proctest.CLI(t, "status", "--api", sns[0].Ready.API); err != nil || !strings.Contains(out, "supernode role") {
		t.Errorf("strata status on a supernode: %v\n%s", err, out)
	}
	if out, err := proctest.CLI(t, "status", "--api", bs.Ready.API); err != nil || !strings.Contains(out, "3 supernodes") {
		t.Errorf("strata status on the bootstrap: %v\n%s", err, out)
	}
}
