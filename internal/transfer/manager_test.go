package transfer

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/proto"
)

func dirs(t *testing.T) (string, string) {
	base := t.TempDir()
	return filepath.Join(base, "share"), filepath.Join(base, "state")
}

func TestDownloadOneSource(t *testing.T) {
	t.Run("direct", func(t *testing.T) { testDownloadOneSource(t, false) })
	t.Run("page-cache", func(t *testing.T) { testDownloadOneSource(t, true) })
}

func testDownloadOneSource(t *testing.T, pageCacheOnly bool) {
	r := newRig(t)
	c := newContent(3*proto.PieceSize+1234, 10)
	lib, _ := libDir(t, c, "x.bin")
	h := r.holder(UploaderConfig{}, lib, nil)
	r.setHits(h.hit(c, "song.mp3"))
	dir, state := dirs(t)
	cfg, done := r.managerConfig(dir, state)
	cfg.pageCacheOnly = pageCacheOnly
	m := startManager(t, cfg)
	st, err := m.Get(c.cid, "")
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != c.cid.String() {
		t.Errorf("ID %q, want the content ID", st.ID)
	}
	got := <-done.ch
	final := waitState(t, m, st.ID, 10*time.Second)
	want := filepath.Join(dir, "song.mp3")
	if got.path != want || got.cid != c.cid || len(got.pieces) != len(c.pieces) || got.pieces[3] != c.pieces[3] {
		t.Errorf("OnComplete(%s, %s, %d pieces)", got.path, got.cid.Short(), len(got.pieces))
	}
	checkFile(t, want, c.data)
	noLeftovers(t, dir, state, "song.mp3")
	if final.State != StateDone || final.Path != want || final.Done != uint64(len(c.data)) || final.Name != "song.mp3" || final.FinishedAt.IsZero() {
		t.Errorf("final status %+v", final)
	}
	if len(final.Sources) != 1 || final.Sources[0].Bytes != uint64(len(c.data)) || final.Sources[0].Peer.ID != h.tr.LocalPeer() {
		t.Errorf("sources %+v", final.Sources)
	}
	// A second Get returns the finished download instead of fetching again.
	again, err := m.Get(c.cid, "")
	if err != nil || again.State != StateDone {
		t.Errorf("Get after done: %+v, %v", again, err)
	}
	b, _ := json.Marshal(final)
	for _, key := range []string{`"content_id":`, `"rate_bps":`, `"eta_seconds":`, `"started_at":`, `"finished_at":`, `"bytes":`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("status JSON lacks %s: %s", key, b)
		}
	}
}

func TestDownloadEmptyAndOddNames(t *testing.T) {
	r := newRig(t)
	dir, state := dirs(t)
	cfg, _ := r.managerConfig(dir, state)
	m := startManager(t, cfg)
	var cid proto.ContentID
	for _, bad := range []string{"../x", "a/b", ".hidden", "x" + ".strata-part", "\x01"} {
		if _, err := m.Get(cid, bad); err == nil {
			t.Errorf("Get with name %q accepted", bad)
		}
	}
}

// TestDownloadQUIC downloads over real QUIC on loopback from two holders.
func TestDownloadQUIC(t *testing.T) {
	log := zaptest.NewLogger(t)
	c := newContent(5*proto.PieceSize+17, 11)
	lib, _ := libDir(t, c, "x.bin")
	h1 := hostOn(t, quicTransport(t, log.Named("h1")), lib)
	h2 := hostOn(t, quicTransport(t, log.Named("h2")), lib)
	me := quicTransport(t, log.Named("me"))
	dir, state := dirs(t)
	hits := []proto.Hit{h1.hit(c, "clip.mkv"), h2.hit(c, "clip.mkv")}
	done := &completions{ch: make(chan completion, 1)}
	m := startManager(t, ManagerConfig{Dir: dir, StateDir: state, ChunkPieces: 1, Self: me.LocalPeer(),
		Find: func(context.Context, proto.ContentID) ([]proto.Hit, error) { return hits, nil },
		Dial: dialer(me), OnComplete: done.fn, Logger: log.Named("dl")})
	if _, err := m.Get(c.cid, ""); err != nil {
		t.Fatal(err)
	}
	got := <-done.ch
	checkFile(t, got.path, c.data)
	noLeftovers(t, dir, state, "clip.mkv")
}

// TestDownloadRoutesAroundBadHolders: holders that do not have the file,
// or lie about its piece list, are dropped; the good one delivers.
func TestDownloadRoutesAroundBadHolders(t *testing.T) {
	r := newRig(t)
	c := newContent(6*proto.PieceSize, 12)
	other := newContent(6*proto.PieceSize, 13)
	lib, path := libDir(t, c, "x.bin")
	empty := r.holder(UploaderConfig{}, newTestLib(), nil)
	liar := r.holder(UploaderConfig{}, newTestLib().addWithPieces(c.cid, path, uint64(len(c.data)), other.pieces), nil)
	good := r.holder(UploaderConfig{}, lib, nil)
	r.setHits(empty.hit(c, "a.bin"), liar.hit(c, "a.bin"), good.hit(c, "a.bin"))
	dir, state := dirs(t)
	cfg, done := r.managerConfig(dir, state)
	m := startManager(t, cfg)
	st, _ := m.Get(c.cid, "")
	checkFile(t, (<-done.ch).path, c.data)
	final := waitState(t, m, st.ID, 5*time.Second)
	reasons := map[proto.PeerID]string{}
	for _, s := range final.Sources {
		reasons[s.Peer.ID] = s.Reason
	}
	if got := reasons[empty.tr.LocalPeer()]; got != "not found" {
		t.Errorf("holder without the file dropped for %q, want \"not found\"", got)
	}
	if got := reasons[liar.tr.LocalPeer()]; !strings.Contains(got, "piece list that does not match") {
		t.Errorf("lying holder dropped for %q", got)
	}
	if got := good.up.Status().BytesTotal; got != uint64(len(c.data)) {
		t.Errorf("good holder sent %d bytes, want %d", got, len(c.data))
	}
}

// TestCorruptSourceDropped: a holder serving wrong bytes is dropped at its
// first bad piece, nothing it sent is written, and the file completes from
// the honest holder.
func TestCorruptSourceDropped(t *testing.T) {
	r := newRig(t)
	c := newContent(16*proto.PieceSize, 14)
	lib, _ := libDir(t, c, "x.bin")
	bad := newTestLib().add(c, c.write(t, t.TempDir(), "x.bin", c.corrupted()))
	hb := r.holder(UploaderConfig{}, bad, nil)
	hg := r.holder(UploaderConfig{MaxRate: 8 << 20}, lib, nil) // slow enough that the bad one gets a range
	r.setHits(hb.hit(c, "a.bin"), hg.hit(c, "a.bin"))
	dir, state := dirs(t)
	cfg, done := r.managerConfig(dir, state)
	m := startManager(t, cfg)
	st, _ := m.Get(c.cid, "")
	checkFile(t, (<-done.ch).path, c.data)
	final := waitState(t, m, st.ID, 5*time.Second)
	for _, s := range final.Sources {
		if s.Peer.ID == hb.tr.LocalPeer() {
			if !strings.HasPrefix(s.Reason, "sent a bad piece ") || s.State != SourceDropped || s.Bytes != 0 {
				t.Errorf("corrupt holder: %+v", s)
			}
			if hb.up.Status().BytesTotal == 0 {
				t.Error("corrupt holder was never asked for a range")
			}
		}
	}
}

// misbehave answers RangeRequests itself: RangeReply, then what body does.
func misbehave(body func(ctx context.Context, s *session.Session, st *session.Stream, req *proto.RangeRequest, data []byte), data []byte) handlerFunc {
	return func(ctx context.Context, s *session.Session, st *session.Stream, first proto.Message) bool {
		req, ok := first.(*proto.RangeRequest)
		if !ok {
			return false
		}
		if err := st.Send(&proto.RangeReply{Offset: req.Offset, Length: req.Length}); err != nil {
			st.Fail(err)
			return true
		}
		body(ctx, s, st, req, data)
		return true
	}
}

func truncating(ctx context.Context, s *session.Session, st *session.Stream, req *proto.RangeRequest, data []byte) {
	_, _ = st.Write(data[req.Offset : req.Offset+req.Length/2])
	st.Finish()
}

func stalling(ctx context.Context, s *session.Session, st *session.Stream, req *proto.RangeRequest, data []byte) {
	_, _ = st.Write(data[req.Offset : req.Offset+proto.PieceSize/2])
	select {
	case <-ctx.Done():
	case <-s.Context().Done():
	}
	st.CancelWrite(proto.CodeShutdown)
	st.CancelRead(proto.CodeShutdown)
}

func TestTruncatingAndStallingSources(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   func(context.Context, *session.Session, *session.Stream, *proto.RangeRequest, []byte)
		reason string
	}{
		{"truncates", truncating, "truncated range"},
		{"stalls", stalling, "stalled 300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			c := newContent(16*proto.PieceSize, 15)
			lib, _ := libDir(t, c, "x.bin")
			hb := r.holder(UploaderConfig{}, lib, misbehave(tc.body, c.data))
			hg := r.holder(UploaderConfig{MaxRate: 8 << 20}, lib, nil)
			r.setHits(hb.hit(c, "a.bin"), hg.hit(c, "a.bin"))
			dir, state := dirs(t)
			cfg, done := r.managerConfig(dir, state)
			cfg.StallTimeout = 300 * time.Millisecond
			m := startManager(t, cfg)
			st, _ := m.Get(c.cid, "")
			checkFile(t, (<-done.ch).path, c.data)
			final := waitState(t, m, st.ID, 5*time.Second)
			for _, s := range final.Sources {
				if s.Peer.ID == hb.tr.LocalPeer() && (s.Reason != tc.reason || s.State != SourceDropped) {
					t.Errorf("misbehaving holder: %+v, want dropped for %q", s, tc.reason)
				}
			}
			noLeftovers(t, dir, state, "a.bin")
		})
	}
}

// TestBadPieceMidRange: a holder whose copy is wrong in one piece only is
// dropped at that piece, naming it; the pieces it sent before, each
// verified on its own, are kept (written and counted), and nothing after.
func TestBadPieceMidRange(t *testing.T) {
	r := newRig(t)
	c := newContent(16*proto.PieceSize, 19)
	const badPiece = 9
	data := bytes.Clone(c.data)
	data[badPiece*proto.PieceSize+77] ^= 0x01
	hb := r.holder(UploaderConfig{}, newTestLib().add(c, c.write(t, t.TempDir(), "x.bin", data)), nil)
	r.setHits(hb.hit(c, "a.bin"))
	dir, state := dirs(t)
	cfg, _ := r.managerConfig(dir, state)
	m := startManager(t, cfg)
	st, _ := m.Get(c.cid, "")
	final := waitState(t, m, st.ID, 10*time.Second)
	want := "every source failed: " + hb.tr.LocalPeer().Short() + ": sent a bad piece 9"
	if final.State != StateFailed || final.Error != want {
		t.Fatalf("state %s, error %q; want failed, %q", final.State, final.Error, want)
	}
	if final.Done != badPiece*proto.PieceSize || len(final.Sources) != 1 || final.Sources[0].Bytes != badPiece*proto.PieceSize {
		t.Errorf("kept %d bytes (source counted %+v), want the %d pieces before the bad one", final.Done, final.Sources, badPiece)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.bin")); err == nil {
		t.Error("a failed download left a file under the final name")
	}
}

func TestEverySourceFails(t *testing.T) {
	r := newRig(t)
	c := newContent(4*proto.PieceSize, 16)
	lib, _ := libDir(t, c, "x.bin")
	bad := newTestLib().add(c, c.write(t, t.TempDir(), "x.bin", c.corrupted()))
	hb := r.holder(UploaderConfig{}, bad, nil)
	hs := r.holder(UploaderConfig{}, lib, misbehave(stalling, c.data))
	r.setHits(hb.hit(c, "a.bin"), hs.hit(c, "a.bin"))
	dir, state := dirs(t)
	cfg, _ := r.managerConfig(dir, state)
	cfg.StallTimeout = 200 * time.Millisecond
	m := startManager(t, cfg)
	st, _ := m.Get(c.cid, "")
	final := waitState(t, m, st.ID, 10*time.Second)
	want := "every source failed: " + hb.tr.LocalPeer().Short() + ": sent a bad piece 0, " + hs.tr.LocalPeer().Short() + ": stalled 200ms"
	if final.State != StateFailed || final.Error != want {
		t.Errorf("state %s, error %q; want failed, %q", final.State, final.Error, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.bin")); err == nil {
		t.Error("a failed download left a file under the final name")
	}
}

func TestNoSource(t *testing.T) {
	r := newRig(t)
	dir, state := dirs(t)
	cfg, _ := r.managerConfig(dir, state)
	m := startManager(t, cfg)
	c := newContent(100, 17)
	st, _ := m.Get(c.cid, "x")
	final := waitState(t, m, st.ID, 5*time.Second)
	if final.State != StateFailed || !strings.HasPrefix(final.Error, "no source for "+c.cid.String()+" could be found") {
		t.Errorf("state %s, error %q", final.State, final.Error)
	}
}

func TestMultiSource(t *testing.T) {
	r := newRig(t)
	c := newContent(48*proto.PieceSize+99, 18)
	lib, _ := libDir(t, c, "x.bin")
	var hs []*holderHost
	var hits []proto.Hit
	for range 3 {
		h := r.holder(UploaderConfig{MaxRate: 16 << 20}, lib, nil)
		hs = append(hs, h)
		hits = append(hits, h.hit(c, "a.bin"))
	}
	hits = append(hits, hits[0])                                                                                                // a duplicate hit
	hits = append(hits, proto.Hit{Entry: hits[0].Entry, Holder: proto.PeerInfo{ID: r.tr.LocalPeer(), Addrs: []string{"self"}}}) // ourselves
	r.setHits(hits...)
	dir, state := dirs(t)
	cfg, done := r.managerConfig(dir, state)
	cfg.ChunkPieces = 2
	m := startManager(t, cfg)
	st, _ := m.Get(c.cid, "")
	checkFile(t, (<-done.ch).path, c.data)
	final := waitState(t, m, st.ID, 5*time.Second)
	if len(final.Sources) != 3 {
		t.Fatalf("%d sources, want 3 (duplicates and ourselves skipped): %+v", len(final.Sources), final.Sources)
	}
	var sum uint64
	for i, h := range hs {
		sent := h.up.Status().BytesTotal
		if sent == 0 || final.Sources[i].Bytes == 0 {
			t.Errorf("holder %d sent %d bytes (status says %d)", i, sent, final.Sources[i].Bytes)
		}
		sum += final.Sources[i].Bytes
	}
	if sum < uint64(len(c.data)) {
		t.Errorf("sources delivered %d verified bytes in all, less than the file", sum)
	}
}

// TestResumeAfterClose: Close mid-download, a new Manager on the same
// folders resumes and fetches only what was missing.
func TestResumeAfterClose(t *testing.T) {
	r := newRig(t)
	c := newContent(32*proto.PieceSize, 19)
	lib, _ := libDir(t, c, "x.bin")
	h := r.holder(UploaderConfig{MaxRate: 4 << 20}, lib, nil) // 2 s for the file
	r.setHits(h.hit(c, "a.bin"))
	dir, state := dirs(t)
	cfg, done := r.managerConfig(dir, state)
	cfg.ChunkPieces = 2

	m1, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m1.Start(context.Background())
	st, _ := m1.Get(c.cid, "")
	waitFor(t, 10*time.Second, "a quarter of the file", func() bool { s, _ := m1.Status(st.ID); return s.Done >= uint64(len(c.data))/4 })
	m1.Close()
	atClose, _ := m1.Status(st.ID)
	if atClose.Done == uint64(len(c.data)) {
		t.Fatal("download finished before Close; slow the holder down")
	}
	waitFor(t, 5*time.Second, "the holder to notice", func() bool { return len(h.up.Status().Active) == 0 })
	sentBefore := h.up.Status().BytesTotal
	if _, err := os.Stat(filepath.Join(state, "partial", c.cid.String()+".state")); err != nil {
		t.Fatalf("no state file after Close: %v", err)
	}

	m2 := startManager(t, cfg)
	if l := m2.List(); len(l) != 1 || l[0].ID != st.ID || l[0].Name != "a.bin" {
		t.Fatalf("new Manager lists %+v", l)
	}
	checkFile(t, (<-done.ch).path, c.data)
	refetched := h.up.Status().BytesTotal - sentBefore
	if missing := uint64(len(c.data)) - atClose.Done; refetched > missing {
		t.Errorf("resume fetched %d bytes; only %d were missing at Close", refetched, missing)
	}
	noLeftovers(t, dir, state, "a.bin")
}

// TestResumeAfterCrash copies the folders while the download runs (what a
// crash or kill leaves behind, torn writes included) and resumes from the
// copy: the file completes correctly without fetching everything again.
func TestResumeAfterCrash(t *testing.T) {
	r := newRig(t)
	c := newContent(32*proto.PieceSize, 20)
	lib, _ := libDir(t, c, "x.bin")
	h := r.holder(UploaderConfig{MaxRate: 4 << 20}, lib, nil) // 2 s for the file
	r.setHits(h.hit(c, "a.bin"))
	dir, state := dirs(t)
	cfg, _ := r.managerConfig(dir, state)
	cfg.CheckpointInterval = 50 * time.Millisecond
	m1 := startManager(t, cfg)
	st, _ := m1.Get(c.cid, "")
	waitFor(t, 10*time.Second, "half the file", func() bool { s, _ := m1.Status(st.ID); return s.Done >= uint64(len(c.data))/2 })
	dir2, state2 := dirs(t)
	copyTree(t, dir, dir2)
	copyTree(t, state, state2)
	m1.Close()

	sentBefore := h.up.Status().BytesTotal
	cfg2, done := r.managerConfig(dir2, state2)
	m2 := startManager(t, cfg2)
	checkFile(t, (<-done.ch).path, c.data)
	if refetched := h.up.Status().BytesTotal - sentBefore; refetched >= uint64(len(c.data))*3/4 {
		t.Errorf("resume after a crash at half fetched %d of %d bytes", refetched, len(c.data))
	}
	_ = m2
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, in)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAlreadyPresent(t *testing.T) {
	r := newRig(t)
	c := newContent(4*proto.PieceSize, 21)
	lib, path := libDir(t, c, "x.bin")
	h := r.holder(UploaderConfig{}, lib, nil)
	r.setHits(h.hit(c, "a.bin"))
	dir, state := dirs(t)
	cfg, _ := r.managerConfig(dir, state)
	cfg.Have = func(cid proto.ContentID) (string, bool) { return path, cid == c.cid }
	m := startManager(t, cfg)
	st, err := m.Get(c.cid, "")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != StateDone || st.Path != path {
		t.Errorf("Get of present content: %+v", st)
	}
	if r.find.Load() != 0 || h.up.Status().BytesTotal != 0 {
		t.Error("present content was searched for or fetched")
	}
	if l := m.List(); len(l) != 1 || l[0].State != StateDone {
		t.Errorf("List: %+v", l)
	}
}

// TestRateCapSlowsDownload: the holder's cap shows up as the download's rate.
func TestRateCapSlowsDownload(t *testing.T) {
	r := newRig(t)
	c := newContent(16*proto.PieceSize, 22) // 4 MiB
	lib, _ := libDir(t, c, "x.bin")
	const rate = 4 << 20
	h := r.holder(UploaderConfig{MaxRate: rate}, lib, nil)
	r.setHits(h.hit(c, "a.bin"))
	dir, state := dirs(t)
	cfg, done := r.managerConfig(dir, state)
	m := startManager(t, cfg)
	start := time.Now()
	if _, err := m.Get(c.cid, ""); err != nil {
		t.Fatal(err)
	}
	<-done.ch
	el := time.Since(start)
	got := float64(len(c.data)) / el.Seconds()
	if got > 1.15*rate {
		t.Errorf("download ran at %.0f B/s over a %d B/s cap", got, rate)
	}
	if got < 0.5*rate {
		t.Errorf("download ran at %.0f B/s, far under the %d B/s cap", got, rate)
	}
}

// TestNoPartialUnderFinalName watches the download folder throughout: the
// final name only ever holds the whole, right file, part files are hidden,
// a different file already under the name is kept, and the same content
// already present is reused.
func TestNoPartialUnderFinalName(t *testing.T) {
	r := newRig(t)
	c := newContent(24*proto.PieceSize+5, 23)
	lib, _ := libDir(t, c, "x.bin")
	h := r.holder(UploaderConfig{MaxRate: 16 << 20}, lib, nil)
	r.setHits(h.hit(c, "song.mp3"))
	dir, state := dirs(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	other := []byte("another song with the same name")
	if err := os.WriteFile(filepath.Join(dir, "song.mp3"), other, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, done := r.managerConfig(dir, state)
	m := startManager(t, cfg)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var problems []string
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				name := e.Name()
				switch {
				case name == "song.mp3":
				case strings.HasSuffix(name, ".strata-part"):
					if !strings.HasPrefix(name, ".") {
						problems = append(problems, "part file not hidden: "+name)
					}
				case name == "song (1).mp3":
					if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil && string(b) != string(c.data) {
						problems = append(problems, "final name holds a partial or wrong file")
					}
				default:
					problems = append(problems, "unexpected file "+name)
				}
			}
			<-tick.C
		}
	}()
	if _, err := m.Get(c.cid, ""); err != nil {
		t.Fatal(err)
	}
	got := <-done.ch
	close(stop)
	wg.Wait()
	for _, p := range problems {
		t.Error(p)
	}
	if got.path != filepath.Join(dir, "song (1).mp3") {
		t.Errorf("finished as %s, want song (1).mp3 beside the other file", got.path)
	}
	checkFile(t, filepath.Join(dir, "song.mp3"), other)
	checkFile(t, got.path, c.data)

	// Same content already under the name: nothing new appears.
	if err := m.Cancel(c.cid.String()); err == nil {
		t.Error("Cancel of a finished download succeeded")
	}
	dir2, state2 := dirs(t)
	c.write(t, mkdir(t, dir2), "song.mp3", nil)
	cfg2, done2 := r.managerConfig(dir2, state2)
	m2 := startManager(t, cfg2)
	if _, err := m2.Get(c.cid, ""); err != nil {
		t.Fatal(err)
	}
	if got := <-done2.ch; got.path != filepath.Join(dir2, "song.mp3") {
		t.Errorf("same content already present: finished as %s", got.path)
	}
	noLeftovers(t, dir2, state2, "song.mp3")
}

func mkdir(t *testing.T, d string) string {
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCancelRemovesPartial(t *testing.T) {
	r := newRig(t)
	c := newContent(32*proto.PieceSize, 24)
	lib, _ := libDir(t, c, "x.bin")
	h := r.holder(UploaderConfig{MaxRate: 4 << 20}, lib, nil)
	r.setHits(h.hit(c, "a.bin"))
	dir, state := dirs(t)
	cfg, _ := r.managerConfig(dir, state)
	m := startManager(t, cfg)
	st, _ := m.Get(c.cid, "")
	waitFor(t, 10*time.Second, "some progress", func() bool { s, _ := m.Status(st.ID); return s.Done > 0 })
	if err := m.Cancel(st.ID); err != nil {
		t.Fatal(err)
	}
	if s, _ := m.Status(st.ID); s.State != StateCancelled {
		t.Errorf("state after Cancel: %s", s.State)
	}
	noLeftovers(t, dir, state)
	if err := m.Cancel("nope"); err == nil {
		t.Error("Cancel of an unknown ID succeeded")
	}
}

func TestNewManagerValidates(t *testing.T) {
	if _, err := NewManager(ManagerConfig{}); err == nil || !strings.Contains(err.Error(), "Dir") {
		t.Errorf("empty config: %v", err)
	}
}

// TestRefindAddsSources: holders that appear after the start are found by
// the periodic search and used.
func TestRefindAddsSources(t *testing.T) {
	r := newRig(t)
	c := newContent(32*proto.PieceSize, 25)
	lib, _ := libDir(t, c, "x.bin")
	slow := r.holder(UploaderConfig{MaxRate: 2 << 20}, lib, nil)
	fast := r.holder(UploaderConfig{}, lib, nil)
	r.setHits(slow.hit(c, "a.bin"))
	dir, state := dirs(t)
	cfg, done := r.managerConfig(dir, state)
	cfg.RefindInterval = 50 * time.Millisecond
	m := startManager(t, cfg)
	st, _ := m.Get(c.cid, "")
	waitFor(t, 5*time.Second, "the slow holder to start", func() bool { s, _ := m.Status(st.ID); return s.Done > 0 })
	r.setHits(slow.hit(c, "a.bin"), fast.hit(c, "a.bin"))
	checkFile(t, (<-done.ch).path, c.data)
	if fast.up.Status().BytesTotal == 0 {
		t.Error("the holder found later sent nothing")
	}
	if r.find.Load() < 2 {
		t.Errorf("Find ran %d times", r.find.Load())
	}
}

// TestResumeAlreadyPresent: a partial download whose content arrived some
// other way is finished at once and its partial data removed.
func TestResumeAlreadyPresent(t *testing.T) {
	r := newRig(t)
	c := newContent(8*proto.PieceSize, 26)
	lib, path := libDir(t, c, "x.bin")
	h := r.holder(UploaderConfig{MaxRate: 1 << 20}, lib, nil) // 2 s for the file
	r.setHits(h.hit(c, "a.bin"))
	dir, state := dirs(t)
	cfg, _ := r.managerConfig(dir, state)
	m1, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m1.Start(context.Background())
	st, _ := m1.Get(c.cid, "")
	waitFor(t, 5*time.Second, "some progress", func() bool { s, _ := m1.Status(st.ID); return s.Done > 0 })
	m1.Close()
	if s, _ := m1.Status(st.ID); s.State == StateDone {
		t.Fatal("download finished before Close; slow the holder down")
	}

	cfg.Have = func(cid proto.ContentID) (string, bool) { return path, cid == c.cid }
	m2 := startManager(t, cfg)
	final := waitState(t, m2, st.ID, 5*time.Second)
	if final.State != StateDone || final.Path != path {
		t.Errorf("resumed download of present content: %+v", final)
	}
	noLeftovers(t, dir, state)
}
