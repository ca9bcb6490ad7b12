package transfer

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/strata-p2p/strata/internal/identity"
	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/internal/transport/memnet"
	"github.com/strata-p2p/strata/internal/transport/quicnet"
	"github.com/strata-p2p/strata/proto"
)

// content is a test file: its bytes, piece hashes and content ID.
type content struct {
	data   []byte
	pieces []proto.PieceHash
	cid    proto.ContentID
}

func newContent(size int, seed uint64) content {
	data := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1})
	_, _ = r.Read(data)
	pieces := hashPieces(data)
	return content{data: data, pieces: pieces, cid: proto.ContentIDOf(uint64(size), pieces)}
}

func hashPieces(data []byte) []proto.PieceHash {
	var out []proto.PieceHash
	for off := 0; off < len(data); off += proto.PieceSize {
		out = append(out, proto.HashPiece(data[off:min(off+proto.PieceSize, len(data))]))
	}
	return out
}

// write saves c's bytes (or other bytes claiming to be c) under dir.
func (c content) write(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	if data == nil {
		data = c.data
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// corrupted returns c's bytes with one byte flipped in every piece.
func (c content) corrupted() []byte {
	b := bytes.Clone(c.data)
	for off := 0; off < len(b); off += proto.PieceSize {
		b[off+min(100, len(b)-off-1)] ^= 0xff
	}
	return b
}

// testLib is a Library over files on disk: what it says a content ID's
// size and pieces are, and which file it opens for it.
type testLib struct {
	mu    sync.Mutex
	files map[proto.ContentID]libEntry
	opens atomic.Int64
}

type libEntry struct {
	path   string
	size   uint64
	pieces []proto.PieceHash
}

func newTestLib() *testLib { return &testLib{files: map[proto.ContentID]libEntry{}} }

// add shares path as content c (whatever path holds).
func (l *testLib) add(c content, path string) *testLib {
	l.mu.Lock()
	l.files[c.cid] = libEntry{path: path, size: uint64(len(c.data)), pieces: c.pieces}
	l.mu.Unlock()
	return l
}

// addWithPieces shares path as cid with a piece list of the caller's choosing.
func (l *testLib) addWithPieces(cid proto.ContentID, path string, size uint64, pieces []proto.PieceHash) *testLib {
	l.mu.Lock()
	l.files[cid] = libEntry{path: path, size: size, pieces: pieces}
	l.mu.Unlock()
	return l
}

func (l *testLib) OpenContent(cid proto.ContentID) (*os.File, uint64, []proto.PieceHash, error) {
	l.opens.Add(1)
	l.mu.Lock()
	e, ok := l.files[cid]
	l.mu.Unlock()
	if !ok {
		return nil, 0, nil, fmt.Errorf("content %s is not shared here", cid.Short())
	}
	f, err := os.Open(e.path)
	if err != nil {
		return nil, 0, nil, err
	}
	return f, e.size, e.pieces, nil
}

// handlerFunc may take a stream before the Uploader does (misbehaving
// holders); it returns false to let the Uploader have it.
type handlerFunc func(ctx context.Context, s *session.Session, st *session.Stream, first proto.Message) bool

// holderHost serves an Uploader on a transport, as a node would.
type holderHost struct {
	tr     transport.Transport
	up     *Uploader
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func hello(tr transport.Transport) proto.Hello {
	return proto.Hello{MinVersion: proto.MinVersion, MaxVersion: proto.MaxVersion, Role: proto.RoleLeaf,
		ListenAddrs: []string{tr.Addr().String()}, Agent: "strata/transfertest"}
}

func startHolder(t testing.TB, tr transport.Transport, up *Uploader, before handlerFunc) *holderHost {
	ctx, cancel := context.WithCancel(context.Background())
	h := &holderHost{tr: tr, up: up, cancel: cancel}
	log := zap.NewNop()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			c, err := tr.Accept(ctx)
			if err != nil {
				return
			}
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				s, err := session.Server(ctx, c, hello(tr))
				if err != nil {
					return
				}
				_ = s.Serve(ctx, log, 0, func(ctx context.Context, s *session.Session, st *session.Stream, first proto.Message) {
					if before != nil && before(ctx, s, st, first) {
						return
					}
					if up == nil || !up.HandleStream(ctx, s, st, first) {
						st.Fail(proto.Errorf(proto.CodeProtocol, "unexpected %s", first.Type()))
					}
				})
				_ = c.CloseWithError(proto.CodeOK, "")
			}()
		}
	}()
	t.Cleanup(h.close)
	return h
}

func (h *holderHost) close() {
	h.cancel()
	h.wg.Wait()
	if h.up != nil {
		h.up.Close()
	}
}

func (h *holderHost) info() proto.PeerInfo {
	return proto.PeerInfo{ID: h.tr.LocalPeer(), Addrs: []string{h.tr.Addr().String()}}
}

func (h *holderHost) hit(c content, name string) proto.Hit {
	return proto.Hit{Entry: proto.FileEntry{ContentID: c.cid, Name: name, Size: uint64(len(c.data))}, Holder: h.info()}
}

// rig is a memnet network with a downloading peer.
type rig struct {
	t    testing.TB
	net  *memnet.Network
	tr   transport.Transport
	next int
	mu   sync.Mutex
	hits []proto.Hit
	find atomic.Int64
}

func newRig(t testing.TB) *rig {
	r := &rig{t: t, net: memnet.NewNetwork(1)}
	r.tr = r.listen()
	return r
}

func (r *rig) listen() transport.Transport {
	r.next++
	var id proto.PeerID
	id[0], id[1] = byte(r.next), 0xaa
	tr, err := r.net.Listen("", id)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { tr.Close() })
	return tr
}

// holder starts a holder serving lib with cfg (and before, if any).
func (r *rig) holder(cfg UploaderConfig, lib Library, before handlerFunc) *holderHost {
	cfg.Logger = zaptest.NewLogger(r.t).Named("up")
	return startHolder(r.t, r.listen(), NewUploader(cfg, lib), before)
}

func (r *rig) setHits(h ...proto.Hit) {
	r.mu.Lock()
	r.hits = h
	r.mu.Unlock()
}

func (r *rig) finder(ctx context.Context, cid proto.ContentID) ([]proto.Hit, error) {
	r.find.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []proto.Hit
	for _, h := range r.hits {
		if h.Entry.ContentID == cid {
			out = append(out, h)
		}
	}
	return out, nil
}

func dialer(tr transport.Transport) Dialer {
	return func(ctx context.Context, peer proto.PeerInfo) (*session.Session, error) {
		c, err := tr.Dial(ctx, peer.Addrs[0], peer.ID)
		if err != nil {
			return nil, err
		}
		s, err := session.Client(ctx, c, hello(tr))
		if err != nil {
			_ = c.CloseWithError(proto.CodeOK, "")
			return nil, err
		}
		return s, nil
	}
}

// completions collects OnComplete calls.
type completions struct {
	ch chan completion
}

type completion struct {
	path   string
	cid    proto.ContentID
	pieces []proto.PieceHash
}

func (c *completions) fn(path string, cid proto.ContentID, pieces []proto.PieceHash) {
	c.ch <- completion{path, cid, pieces}
}

// managerConfig is a config downloading through r into fresh folders.
func (r *rig) managerConfig(dir, state string) (ManagerConfig, *completions) {
	done := &completions{ch: make(chan completion, 16)}
	return ManagerConfig{
		Dir: dir, StateDir: state, Find: r.finder, Dial: dialer(r.tr), Self: r.tr.LocalPeer(),
		StallTimeout: 2 * time.Second, ChunkPieces: 4, OnComplete: done.fn,
		Logger: zaptest.NewLogger(r.t).Named("dl"),
	}, done
}

func startManager(t testing.TB, cfg ManagerConfig) *Manager {
	t.Helper()
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	t.Cleanup(func() { cancel(); m.Close() })
	return m
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		<-tick.C
	}
}

// waitState waits until download id reaches one of the terminal states.
func waitState(t testing.TB, m *Manager, id string, within time.Duration) DownloadStatus {
	t.Helper()
	var st DownloadStatus
	waitFor(t, within, "download "+id[:12]+" to end", func() bool {
		st, _ = m.Status(id)
		return st.State == StateDone || st.State == StateFailed || st.State == StateCancelled
	})
	return st
}

func checkFile(t testing.TB, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, differ from the %d expected", path, len(got), len(want))
	}
}

// noLeftovers checks that dir holds only the named files and no part file,
// and that the state folder holds no state.
func noLeftovers(t testing.TB, dir, state string, names ...string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if fmt.Sprint(got) != fmt.Sprint(names) {
		t.Errorf("%s holds %v, want %v", dir, got, names)
	}
	if ents, _ := os.ReadDir(filepath.Join(state, "partial")); len(ents) != 0 {
		t.Errorf("state folder still holds %d entries (%s...)", len(ents), ents[0].Name())
	}
}

// quicTransport listens on loopback with a fresh identity.
func quicTransport(t testing.TB, log *zap.Logger) *quicnet.Transport {
	t.Helper()
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := quicnet.Listen("127.0.0.1:0", id, quicnet.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}
