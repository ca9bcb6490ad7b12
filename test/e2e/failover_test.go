package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-p2p/strata/internal/transfer"
	"github.com/strata-p2p/strata/node"
	"github.com/strata-p2p/strata/proto"
	"github.com/strata-p2p/strata/test/internal/proctest"
)

// trySearch is search without failing the test: it reports the hits or
// what went wrong (an HTTP error, or an error on the done line).
func (p *proc) trySearch(q string, max int, timeout time.Duration) ([]proto.Hit, error) {
	u := "http://" + p.Ready.API + "/v1/search?" + url.Values{"q": {q}, "timeout": {timeout.String()},
		"max": {strconv.Itoa(max)}}.Encode()
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return nil, fmt.Errorf("%s: %s", resp.Status, e.Error)
	}
	var hits []proto.Hit
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var ev node.SearchEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return hits, fmt.Errorf("search line %q: %v", sc.Text(), err)
		}
		if ev.Hit != nil {
			hits = append(hits, *ev.Hit)
		}
		if ev.Error != "" {
			return hits, fmt.Errorf("search ended with: %s", ev.Error)
		}
	}
	return hits, sc.Err()
}

// attachedTo lists the supernodes a leaf is attached to.
func attachedTo(st node.Status) map[proto.PeerID]bool {
	out := map[proto.PeerID]bool{}
	for _, a := range st.Attachments {
		out[a.Supernode.ID] = true
	}
	return out
}

// eventTime is when p's status first reports an event starting with what
// after since (zero if none).
func eventTime(st node.Status, since time.Time, what string) time.Time {
	for _, e := range st.Events {
		if e.At.After(since) && strings.HasPrefix(e.What, what) {
			return e.At
		}
	}
	return time.Time{}
}

// hasTwoWithout reports whether p is attached to two supernodes, none of
// them gone.
func hasTwoWithout(p *proc, gone proto.PeerID) bool {
	att := attachedTo(p.Status())
	return len(att) == 2 && !att[gone]
}

// bootstrapSupernodes is how many supernodes a bootstrap server lists.
func bootstrapSupernodes(p *proc) int {
	var st struct {
		Supernodes []json.RawMessage `json:"supernodes"`
	}
	p.GetJSON("/v1/status", &st)
	return len(st.Supernodes)
}

// failoverLeaves is how many leaves TestSupernodeFailover attaches to the
// supernode it kills: STRATA_FAILOVER_LEAVES, or 10 (50 is the issue's
// figure; it needs more than the CI machine's two cores give in seconds).
func failoverLeaves(t *testing.T) int {
	n := 10
	if s := os.Getenv("STRATA_FAILOVER_LEAVES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 2 || v > 200 {
			t.Fatalf("STRATA_FAILOVER_LEAVES=%q: want 2 to 200", s)
		}
		n = v
	}
	return n
}

// TestSupernodeFailover: leaves keep two supernodes each; one supernode,
// attached to every leaf, is killed with SIGKILL while several leaves search
// without pause. No search fails (each is retried on the leaf's other
// supernode, where every file is still indexed), and every leaf is attached
// to two supernodes again within a few seconds.
func TestSupernodeFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts many processes")
	}
	leaves := failoverLeaves(t)
	bs := start(t, "bootstrap", proctest.BootstrapArgs(t)...)
	bsAddr := bs.Ready.QUIC
	snArgs := func() []string {
		return proctest.NodeArgs(t, bsAddr, "--role", "supernode", "--max-leaves", strconv.Itoa(leaves+10))
	}
	// The victim and a survivor first: every leaf attaches to both.
	victim := start(t, "sn-victim", snArgs()...)
	survivor := start(t, "sn-survivor", snArgs()...)
	proctest.Eventually(t, 15*time.Second, "the two supernodes did not link", func() bool {
		return len(victim.Status().Supernode.Neighbours) == 1
	})
	var ls []*proc
	var mu sync.Mutex
	var wg sync.WaitGroup
	gate := make(chan struct{}, 4) // start four at a time
	for i := range leaves {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gate <- struct{}{}
			defer func() { <-gate }()
			share := t.TempDir()
			writeMP3(t, share, fmt.Sprintf("failword%d tune.mp3", i), "Failover", fmt.Sprintf("Tune %d", i))
			p := start(t, fmt.Sprintf("leaf%d", i), proctest.NodeArgs(t, bsAddr, "--role", "leaf", "--supernodes", "2", "--share", share)...)
			mu.Lock()
			ls = append(ls, p)
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, p := range ls {
		proctest.Eventually(t, 30*time.Second, p.Name+" did not attach to both supernodes", func() bool {
			return len(p.Status().Attachments) == 2
		})
	}
	proctest.Eventually(t, 15*time.Second, "the victim did not index every leaf's file", func() bool {
		s := victim.Status().Supernode
		return len(s.Leaves) == leaves && s.IndexFiles == leaves
	})
	// A third supernode with room, for the leaves to move to.
	spare := start(t, "sn-spare", snArgs()...)
	proctest.Eventually(t, 15*time.Second, "the bootstrap does not list the spare supernode", func() bool {
		return bootstrapSupernodes(bs) == 3
	})
	// Linked to both, so a search the leaves send it floods to the survivor.
	proctest.Eventually(t, 15*time.Second, "the spare supernode did not link to the other two", func() bool {
		return len(spare.Status().Supernode.Neighbours) == 2
	})
	words := map[*proc]string{}
	for _, p := range ls {
		var files []proto.FileEntry
		p.GetJSON("/v1/shares", &files)
		words[p] = strings.Fields(files[0].Name)[0]
	}

	// Searchers: each asks for another leaf's file, four times a second
	// (under the supernodes' per-leaf rate limit), until told to stop.
	searchers := min(4, leaves)
	stop := make(chan struct{})
	type outcome struct {
		at  time.Time
		err error
	}
	var outcomes []outcome
	var omu sync.Mutex
	var swg sync.WaitGroup
	for i := range searchers {
		asker, holder := ls[i], ls[(i+1)%leaves]
		swg.Add(1)
		go func() {
			defer swg.Done()
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				at := time.Now()
				hits, err := asker.trySearch(words[holder], 1, 4*time.Second)
				if err == nil && hasHolder(hits, holder.Ready.PeerID) == nil {
					err = fmt.Errorf("no hit from %s (%d hits)", holder.Name, len(hits))
				}
				if err != nil {
					err = fmt.Errorf("%s searching %q: %w", asker.Name, words[holder], err)
				}
				omu.Lock()
				outcomes = append(outcomes, outcome{at, err})
				omu.Unlock()
			}
		}()
	}
	count := func(after time.Time) int {
		omu.Lock()
		defer omu.Unlock()
		n := 0
		for _, o := range outcomes {
			if !o.at.Before(after) {
				n++
			}
		}
		return n
	}
	proctest.Eventually(t, 20*time.Second, "searches did not run before the kill", func() bool {
		return count(time.Time{}) >= 2*searchers
	})
	killedAt := time.Now()
	victim.Kill()
	gone := victim.Ready.PeerID
	var worst, worstDetect time.Duration
	var took []time.Duration
	for _, p := range ls {
		var st node.Status
		proctest.Eventually(t, 15*time.Second, p.Name+" did not get two supernodes again", func() bool {
			st = p.Status()
			att := attachedTo(st)
			return len(att) == 2 && !att[gone]
		})
		// The leaf's own events say when it noticed the loss and when it
		// was attached again (shares uploaded), independent of polling.
		detached, attached := eventTime(st, killedAt, "detached from supernode "+gone.Short()), time.Time{}
		for _, e := range st.Events {
			if e.At.After(killedAt) && strings.HasPrefix(e.What, "attached to supernode") {
				attached = e.At
			}
		}
		if detached.IsZero() || attached.IsZero() {
			t.Fatalf("%s has no detach or attach event after the kill: %+v", p.Name, st.Events)
		}
		worst, worstDetect = max(worst, attached.Sub(killedAt)), max(worstDetect, detached.Sub(killedAt))
		took = append(took, attached.Sub(killedAt))
		if attached.Sub(killedAt) > 5*time.Second {
			t.Logf("%s took %v; its events: %+v", p.Name, attached.Sub(killedAt), st.Events)
		}
	}
	slices.Sort(took)
	recovered := time.Now()
	proctest.Eventually(t, 20*time.Second, "searches did not run after the recovery", func() bool {
		return count(recovered) >= 2*searchers
	})
	close(stop)
	swg.Wait()

	var before, during, failed int
	for _, o := range outcomes {
		switch {
		case o.at.Before(killedAt):
			before++
		default:
			during++
		}
		if o.err != nil {
			failed++
			t.Errorf("search failed: %v", o.err)
		}
	}
	var retried uint64
	shed := 0
	for _, p := range ls[:searchers] {
		retried += p.Status().SearchRetries
	}
	for _, p := range ls {
		shed += strings.Count(p.Logs(), "keeping the healthiest")
	}
	t.Logf("FIGURE: %d leaves on the killed supernode: all had two supernodes again %v after kill -9 (median %v) "+
		"(the last noticed the loss after %v); %d searches before the kill, %d during and after, %d failed, "+
		"%d retried on the other supernode; %d surplus attachments shed", leaves, worst.Round(time.Millisecond),
		took[len(took)/2].Round(time.Millisecond), worstDetect.Round(time.Millisecond),
		before, during, failed, retried, shed)
	if during == 0 {
		t.Error("no search ran during the outage")
	}
	// The target is 3 s; the bound is generous for a loaded CI machine.
	if worst > 10*time.Second {
		t.Errorf("leaves took %v to get two supernodes again", worst)
	}
	if n := len(spare.Status().Supernode.Leaves); n != leaves {
		t.Errorf("the spare supernode has %d leaves, want all %d", n, leaves)
	}
	if n := len(survivor.Status().Supernode.Leaves); n != leaves {
		t.Errorf("the survivor has %d leaves, want all %d", n, leaves)
	}
	// strata status lists both supernodes.
	out, err := proctest.CLI(t, "status", "--api", ls[0].Ready.API)
	if err != nil || !strings.Contains(out, "2 of 2 attached") || !strings.Contains(out, survivor.Ready.PeerID.String()) ||
		!strings.Contains(out, spare.Ready.PeerID.String()) {
		t.Errorf("strata status on a leaf: %v\n%s", err, out)
	}
}

// TestRejoinThroughHostCache: with every bootstrap server down, a restarted
// leaf attaches to two supernodes from its host cache and its searches
// work; a restarted supernode finds a mesh neighbour the same way.
func TestRejoinThroughHostCache(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several processes")
	}
	bs := start(t, "bootstrap", proctest.BootstrapArgs(t)...)
	bsAddr := bs.Ready.QUIC
	sn1 := start(t, "sn1", proctest.NodeArgs(t, bsAddr, "--role", "supernode")...)
	sn2State := t.TempDir()
	sn2Args := []string{"node", "--bootstrap", bsAddr, "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0",
		"--state-dir", sn2State, "--downloads", t.TempDir(), "--role", "supernode", "--heartbeat", "250ms", "--log-format", "json"}
	sn2 := start(t, "sn2", sn2Args...)
	proctest.Eventually(t, 15*time.Second, "the supernodes did not link", func() bool {
		return len(sn2.Status().Supernode.Neighbours) == 1
	})
	share := t.TempDir()
	writeMP3(t, share, "cachedword song.mp3", "Cache", "Cached song")
	holder := start(t, "holder", proctest.NodeArgs(t, bsAddr, "--role", "leaf", "--share", share)...)

	state, dl := t.TempDir(), t.TempDir()
	args := []string{"node", "--bootstrap", bsAddr, "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0",
		"--state-dir", state, "--downloads", dl, "--role", "leaf", "--supernodes", "2", "--log-format", "json"}
	leaf := start(t, "leaf", args...)
	for _, p := range []*proc{holder, leaf} {
		proctest.Eventually(t, 15*time.Second, p.Name+" did not attach to both supernodes", func() bool {
			st := p.Status()
			return len(st.Attachments) == 2 && st.HostCache >= 2
		})
	}
	if hasHolder(leaf.search("cachedword", 2*time.Second), holder.Ready.PeerID) == nil {
		t.Fatal("search failed with the bootstrap up")
	}
	leaf.Stop() // SIGTERM: the cache is saved
	if _, err := os.Stat(filepath.Join(state, "hostcache")); err != nil {
		t.Fatalf("no host cache saved: %v", err)
	}
	proctest.Eventually(t, 10*time.Second, "sn2 has not saved its host cache", func() bool {
		_, err := os.Stat(filepath.Join(sn2State, "hostcache"))
		return err == nil
	})
	bs.Kill()

	leaf2 := start(t, "leaf-restarted", args...)
	took := proctest.Eventually(t, 15*time.Second, "restarted leaf did not attach through its host cache", func() bool {
		return len(leaf2.Status().Attachments) == 2
	})
	t.Logf("FIGURE: bootstrap down: restarted leaf attached to two supernodes from its host cache %v after it was ready", took.Round(time.Millisecond))
	var hits []proto.Hit
	proctest.Eventually(t, 10*time.Second, "search after rejoining through the host cache found nothing", func() bool {
		var err error
		hits, err = leaf2.trySearch("cachedword", 10, 2*time.Second)
		return err == nil && hasHolder(hits, holder.Ready.PeerID) != nil
	})
	if !strings.Contains(leaf2.Logs(), "host cache loaded") {
		t.Error("restarted leaf did not log loading its host cache")
	}

	// A supernode restarted (on a new port) while the bootstrap is down
	// links to the mesh through its own host cache.
	sn2.Kill()
	sn2b := start(t, "sn2-restarted", sn2Args...)
	took = proctest.Eventually(t, 20*time.Second, "restarted supernode found no mesh neighbour without a bootstrap", func() bool {
		nbs := sn2b.Status().Supernode.Neighbours
		return len(nbs) == 1 && nbs[0].ID == sn1.Ready.PeerID
	})
	t.Logf("FIGURE: bootstrap down: restarted supernode linked to the mesh from its host cache %v after it was ready", took.Round(time.Millisecond))
}

// TestTwoBootstraps: supernodes register with both bootstrap servers; with
// one killed, a new leaf still joins through the other; the killed one,
// restarted on its address, rebuilds its list from heartbeats.
func TestTwoBootstraps(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several processes")
	}
	b1State := t.TempDir()
	b1 := start(t, "bootstrap1", "bootstrap", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--state-dir", b1State, "--log-format", "json")
	b2 := start(t, "bootstrap2", proctest.BootstrapArgs(t)...)
	both := b1.Ready.QUIC + "," + b2.Ready.QUIC
	for i := range 2 {
		start(t, fmt.Sprintf("sn%d", i+1), proctest.NodeArgs(t, both, "--role", "supernode")...)
	}
	for _, b := range []*proc{b1, b2} {
		proctest.Eventually(t, 15*time.Second, b.Name+" does not list both supernodes", func() bool {
			return bootstrapSupernodes(b) == 2
		})
	}
	b1.Kill()
	// The dead server is first in the list: the leaf must move on to the other.
	leaf := start(t, "leaf", proctest.NodeArgs(t, both, "--role", "leaf", "--supernodes", "2")...)
	took := proctest.Eventually(t, 20*time.Second, "leaf did not join with one bootstrap server down", func() bool {
		return len(leaf.Status().Attachments) == 2
	})
	t.Logf("leaf attached to two supernodes %v after it was ready, with the first bootstrap server down", took.Round(time.Millisecond))

	_, port, _ := net.SplitHostPort(b1.Ready.QUIC)
	b1r := start(t, "bootstrap1-restarted", "bootstrap", "--listen", "127.0.0.1:"+port, "--api", "127.0.0.1:0",
		"--state-dir", b1State, "--log-format", "json")
	took = proctest.Eventually(t, 20*time.Second, "restarted bootstrap server did not relearn the supernodes", func() bool {
		return bootstrapSupernodes(b1r) == 2
	})
	t.Logf("FIGURE: restarted bootstrap server listed both supernodes again %v after it was ready (heartbeats back off up to 8 s from a failing server)", took.Round(time.Millisecond))
}

// TestDownloadSurvivesFailover: a download keeps going when the
// downloader's supernode is killed and then one of the two sources is.
func TestDownloadSurvivesFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several processes")
	}
	bs := start(t, "bootstrap", proctest.BootstrapArgs(t)...)
	bsAddr := bs.Ready.QUIC
	var sns []*proc
	for i := range 3 {
		sns = append(sns, start(t, fmt.Sprintf("sn%d", i+1), proctest.NodeArgs(t, bsAddr, "--role", "supernode")...))
	}
	const size = 12 << 20
	dirs := []string{t.TempDir(), t.TempDir()}
	want := writeRandom(t, dirs[0], "failover movie.bin", size, 3)
	writeRandom(t, dirs[1], "failover movie.bin", size, 3)
	var holders []*proc
	for i, d := range dirs {
		holders = append(holders, start(t, fmt.Sprintf("holder%d", i+1),
			proctest.NodeArgs(t, bsAddr, "--role", "leaf", "--share", d, "--max-upload-rate", "1MB")...))
	}
	getter := start(t, "getter", proctest.NodeArgs(t, bsAddr, "--role", "leaf", "--supernodes", "2")...)
	for _, p := range append(holders, getter) {
		proctest.Eventually(t, 15*time.Second, p.Name+" did not attach to two supernodes", func() bool {
			return len(p.Status().Attachments) == 2
		})
	}
	proctest.Eventually(t, 15*time.Second, "both holders not found", func() bool {
		return len(getter.search("failover movie", time.Second)) == 2
	})
	cid := findCID(t, getter, "movie")
	startDownload(t, getter, cid, "failover movie.bin")
	progress := func(frac float64, what string) {
		proctest.Eventually(t, 60*time.Second, "download did not get "+what, func() bool {
			l := downloads(t, getter)
			if len(l) == 1 && l[0].State == transfer.StateFailed {
				t.Fatalf("download failed: %+v", l[0])
			}
			return len(l) == 1 && float64(l[0].Done) > frac*size
		})
	}
	progress(0.2, "a fifth of the way")
	primary := getter.Status().Attached.Supernode.ID
	for _, sn := range sns {
		if sn.Ready.PeerID == primary {
			sn.Kill()
		}
	}
	progress(0.5, "half way after its supernode was killed")
	holders[0].Kill()
	var final transfer.DownloadStatus
	proctest.Eventually(t, 60*time.Second, "download did not finish after losing its supernode and a source", func() bool {
		l := downloads(t, getter)
		if len(l) == 1 && l[0].State == transfer.StateFailed {
			t.Fatalf("download failed: %+v", l[0])
		}
		if len(l) != 1 || l[0].State != transfer.StateDone {
			return false
		}
		final = l[0]
		return true
	})
	if fileHash(t, final.Path) != want {
		t.Fatal("downloaded file does not match the original")
	}
	proctest.Eventually(t, 15*time.Second, "getter did not get two supernodes again", func() bool {
		return hasTwoWithout(getter, primary)
	})
}

// TestSupernodeShutdownHandsOff: a supernode stopped with SIGTERM hands its
// leaves off (Move) before it goes: each attaches to another supernode, then
// leaves it, at once rather than after the connection's idle timeout.
func TestSupernodeShutdownHandsOff(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several processes")
	}
	bs := start(t, "bootstrap", proctest.BootstrapArgs(t)...)
	var sns []*proc
	for i := range 3 {
		sns = append(sns, start(t, fmt.Sprintf("sn%d", i+1), proctest.NodeArgs(t, bs.Ready.QUIC, "--role", "supernode")...))
	}
	var ls []*proc
	for i := range 3 {
		ls = append(ls, start(t, fmt.Sprintf("leaf%d", i+1), proctest.NodeArgs(t, bs.Ready.QUIC, "--role", "leaf", "--supernodes", "2")...))
	}
	for _, p := range ls {
		proctest.Eventually(t, 15*time.Second, p.Name+" did not attach to two supernodes", func() bool {
			return len(p.Status().Attachments) == 2
		})
	}
	victim := sns[0]
	var moved []*proc
	for _, p := range ls {
		if attachedTo(p.Status())[victim.Ready.PeerID] {
			moved = append(moved, p)
		}
	}
	stoppedAt := time.Now()
	victim.Stop()
	for _, p := range moved {
		proctest.Eventually(t, 10*time.Second, p.Name+" did not get two supernodes again", func() bool {
			return hasTwoWithout(p, victim.Ready.PeerID)
		})
		// Make-before-break: the leaf attached to another supernode before
		// it left the one shutting down.
		st := p.Status()
		left := eventTime(st, stoppedAt, "detached from supernode "+victim.Ready.PeerID.Short()+": moved to supernode")
		joined := eventTime(st, stoppedAt, "attached to supernode")
		if left.IsZero() || joined.IsZero() || joined.After(left) {
			t.Errorf("%s did not attach elsewhere before leaving the supernode shutting down: %+v", p.Name, st.Events)
			continue
		}
		t.Logf("FIGURE: SIGTERM: %s attached elsewhere %v and left %v after the signal", p.Name,
			joined.Sub(stoppedAt).Round(time.Millisecond), left.Sub(stoppedAt).Round(time.Millisecond))
	}
}

// TestSpareSlotGoesToALeafWithNone: two supernodes with two leaf slots each
// are full with two leaves that keep two supernodes each. A third leaf,
// with no supernode, is not refused: one full supernode gives it the slot
// of a leaf that has another supernode, and that leaf keeps its other one.
func TestSpareSlotGoesToALeafWithNone(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six processes")
	}
	bs := start(t, "bootstrap", proctest.BootstrapArgs(t)...)
	bsAddr := bs.Ready.QUIC
	var sns []*proc
	for i := range 2 {
		sns = append(sns, start(t, fmt.Sprintf("sn%d", i+1), proctest.NodeArgs(t, bsAddr, "--role", "supernode", "--max-leaves", "2")...))
	}
	var ls []*proc
	for i := range 2 {
		ls = append(ls, start(t, fmt.Sprintf("leaf%d", i+1), proctest.NodeArgs(t, bsAddr, "--role", "leaf", "--supernodes", "2")...))
	}
	for _, l := range ls {
		proctest.Eventually(t, 15*time.Second, l.Name+" did not attach to both supernodes", func() bool {
			return len(attachedTo(l.Status())) == 2
		})
	}
	late := start(t, "late", proctest.NodeArgs(t, bsAddr, "--role", "leaf", "--supernodes", "2")...)
	proctest.Eventually(t, 15*time.Second, "the late leaf found no slot on two full supernodes", func() bool {
		return len(attachedTo(late.Status())) >= 1
	})
	sessions := 0
	for _, sn := range sns {
		sessions += len(sn.Status().Supernode.Leaves)
	}
	if sessions > 4 {
		t.Fatalf("%d leaf sessions on two supernodes with two slots each", sessions)
	}
	// Settled: every leaf keeps at least one supernode, and nobody is
	// evicted back and forth.
	time.Sleep(3 * time.Second)
	evictions := 0
	for _, l := range append(ls, late) {
		st := l.Status()
		if len(attachedTo(st)) == 0 {
			t.Errorf("%s lost every supernode: %+v", l.Name, st.Events)
		}
		for _, e := range st.Events {
			if strings.Contains(e.What, "slot given to a leaf with no other supernode") {
				evictions++
			}
		}
	}
	if evictions != 1 {
		t.Errorf("%d slots reclaimed, want 1 (the late leaf's)", evictions)
	}
}
