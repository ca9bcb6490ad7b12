package transfer

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/internal/shares"
	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/proto"
)

func TestMain(m *testing.M) {
	code := m.Run()
	cleanupBenchFiles()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// requester is a bare peer sending transfer requests to a holder.
type requester struct {
	sess *session.Session
}

func (r *rig) requester(t *testing.T, h *holderHost) *requester {
	t.Helper()
	tr := r.listen()
	s, err := dialer(tr)(testCtx(t), h.info())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.CloseWithError(proto.CodeOK, "") })
	return &requester{sess: s}
}

// open sends msg on a new stream and closes the write side.
func (q *requester) open(t *testing.T, msg proto.Message) *session.Stream {
	t.Helper()
	st, err := q.sess.Open(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(msg); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	return st
}

// errorCode sends msg and returns the code of the ErrorMsg answering it.
func (q *requester) errorCode(t *testing.T, msg proto.Message) proto.ErrorCode {
	t.Helper()
	st := q.open(t, msg)
	defer st.CancelRead(proto.CodeOK)
	m, err := st.Recv()
	if err != nil {
		t.Fatalf("%s: %v", msg.Type(), err)
	}
	e, ok := m.(*proto.ErrorMsg)
	if !ok {
		t.Fatalf("%s answered with %s, want an error", msg.Type(), m.Type())
	}
	return e.Code
}

func TestUploaderNotFound(t *testing.T) {
	r := newRig(t)
	c := newContent(1<<20, 1)
	lib := newTestLib().add(c, c.write(t, t.TempDir(), "a.bin", nil))
	h := r.holder(UploaderConfig{}, lib, nil)
	q := r.requester(t, h)
	var unknown proto.ContentID
	unknown[0] = 9
	if code := q.errorCode(t, &proto.RangeRequest{ContentID: unknown, Offset: 0, Length: 10}); code != proto.CodeNotFound {
		t.Errorf("range of unknown content: %s, want not found", code)
	}
	if code := q.errorCode(t, &proto.PiecesRequest{ContentID: unknown, Count: 10}); code != proto.CodeNotFound {
		t.Errorf("pieces of unknown content: %s, want not found", code)
	}
}

func TestUploaderBadRange(t *testing.T) {
	r := newRig(t)
	c := newContent(1<<20+5, 2)
	lib := newTestLib().add(c, c.write(t, t.TempDir(), "a.bin", nil))
	h := r.holder(UploaderConfig{MaxRange: 1 << 20}, lib, nil)
	q := r.requester(t, h)
	size := uint64(len(c.data))
	for _, tc := range []struct {
		name        string
		off, length uint64
	}{
		{"past the end", size, 1},
		{"crosses the end", size - 4, 5},
		{"offset overflows", 1<<64 - 1, 2},
		{"empty", 0, 0},
		{"over the cap", 0, 1<<20 + 1},
	} {
		if code := q.errorCode(t, &proto.RangeRequest{ContentID: c.cid, Offset: tc.off, Length: tc.length}); code != proto.CodeBadRequest {
			t.Errorf("%s: %s, want bad request", tc.name, code)
		}
	}
	if code := q.errorCode(t, &proto.PiecesRequest{ContentID: c.cid, First: 6, Count: 1}); code != proto.CodeBadRequest {
		t.Errorf("pieces past the end: %s, want bad request", code)
	}
	// The last byte is a valid range.
	st := q.open(t, &proto.RangeRequest{ContentID: c.cid, Offset: size - 1, Length: 1})
	defer st.CancelRead(proto.CodeOK)
	if m, err := st.Recv(); err != nil || m.Type() != proto.TypeRangeReply {
		t.Fatalf("last byte: %v %v", m, err)
	}
	b, err := io.ReadAll(st)
	if err != nil || len(b) != 1 || b[0] != c.data[size-1] {
		t.Fatalf("last byte: got %v, %v", b, err)
	}
}

// TestUploaderLibraryRefuses serves from a real shares.Library: content
// changed on disk since the scan is refused as not found, even though the
// file is still there under the same name.
func TestUploaderLibraryRefuses(t *testing.T) {
	r := newRig(t)
	dir := t.TempDir()
	c := newContent(700<<10, 3)
	path := c.write(t, dir, "song.mp3", nil)
	lib, err := shares.Open(shares.Config{Dirs: []string{dir}, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	if _, err := lib.Scan(testCtx(t), nil); err != nil {
		t.Fatal(err)
	}
	h := r.holder(UploaderConfig{}, lib, nil)
	q := r.requester(t, h)

	st := q.open(t, &proto.PiecesRequest{ContentID: c.cid, Count: 100})
	m, err := st.Recv()
	st.CancelRead(proto.CodeOK)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := m.(*proto.Pieces); !ok || p.Size != uint64(len(c.data)) || len(p.Hashes) != 32*len(c.pieces) {
		t.Fatalf("piece list from shares.Library: %#v", m)
	}

	later := time.Now().Add(time.Hour)
	if err := os.WriteFile(path, c.corrupted(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if code := q.errorCode(t, &proto.RangeRequest{ContentID: c.cid, Offset: 0, Length: 10}); code != proto.CodeNotFound {
		t.Errorf("range of a file changed since the scan: %s, want not found", code)
	}
}

// TestUploadQueuePositions: one slot, three requesters; the second and
// third are told their places, and the third moves up when the first ends.
func TestUploadQueuePositions(t *testing.T) {
	r := newRig(t)
	c := newContent(1<<20, 4)
	lib := newTestLib().add(c, c.write(t, t.TempDir(), "a.bin", nil))
	h := r.holder(UploaderConfig{Slots: 1, MaxRate: 2 << 20, QueueRefresh: time.Minute}, lib, nil)
	req := &proto.RangeRequest{ContentID: c.cid, Offset: 0, Length: 512 << 10}

	type event struct {
		who string
		msg proto.Message
	}
	events := make(chan event, 64)
	run := func(who string, st *session.Stream, done chan<- struct{}) {
		defer close(done)
		defer st.CancelRead(proto.CodeOK)
		for {
			m, err := st.Recv()
			if err != nil {
				events <- event{who, &proto.ErrorMsg{Message: err.Error()}}
				return
			}
			events <- event{who, m}
			if _, ok := m.(*proto.RangeReply); ok {
				if n, err := io.Copy(io.Discard, st); err != nil || n != int64(req.Length) {
					events <- event{who, &proto.ErrorMsg{Message: "short body"}}
				}
				return
			}
		}
	}
	var done [3]chan struct{}
	for i, who := range []string{"a", "b", "c"} {
		done[i] = make(chan struct{})
		st := r.requester(t, h).open(t, req)
		go run(who, st, done[i])
		switch i {
		case 0:
			waitFor(t, 5*time.Second, "a to get the slot", func() bool { return len(h.up.Status().Active) == 1 })
		default:
			waitFor(t, 5*time.Second, who+" to queue", func() bool { return h.up.Status().Queued == i })
		}
	}
	if s := h.up.Status(); s.Slots != 1 || len(s.Active) != 1 || s.Queued != 2 || s.MaxRate != 2<<20 {
		t.Errorf("status with one sending and two queued: %+v", s)
	}
	for _, ch := range done {
		<-ch
	}
	close(events)
	got := map[string][]string{}
	for e := range events {
		var s string
		switch m := e.msg.(type) {
		case *proto.Queued:
			s = "queued " + string(rune('0'+m.Position)) + "/" + string(rune('0'+m.Slots))
		case *proto.RangeReply:
			s = "reply"
		case *proto.ErrorMsg:
			s = "error " + m.Message
		default:
			s = m.Type().String()
		}
		got[e.who] = append(got[e.who], s)
	}
	want := map[string]string{
		"a": "[reply]",
		"b": "[queued 1/1 reply]",
		"c": "[queued 2/1 queued 1/1 reply]",
	}
	for who, w := range want {
		if g := fmtList(got[who]); g != w {
			t.Errorf("%s saw %s, want %s", who, g, w)
		}
	}
	if s := h.up.Status(); s.BytesTotal != 3*req.Length || len(s.Peers) != 3 {
		t.Errorf("after three ranges: %d bytes total, %d peers; want %d, 3", s.BytesTotal, len(s.Peers), 3*req.Length)
	}
}

func fmtList(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}

func TestUploadQueueFullAndPerPeer(t *testing.T) {
	r := newRig(t)
	c := newContent(1<<20, 5)
	lib := newTestLib().add(c, c.write(t, t.TempDir(), "a.bin", nil))
	h := r.holder(UploaderConfig{Slots: 1, QueueLen: 1, PerPeer: 2, MaxRate: 1 << 20}, lib, nil)
	req := &proto.RangeRequest{ContentID: c.cid, Offset: 0, Length: 1 << 20}
	q1 := r.requester(t, h)
	a := q1.open(t, req) // slot
	defer a.CancelRead(proto.CodeOK)
	waitFor(t, 5*time.Second, "the slot to be taken", func() bool { return len(h.up.Status().Active) == 1 })
	b := q1.open(t, req) // queue
	defer b.CancelRead(proto.CodeOK)
	waitFor(t, 5*time.Second, "the queue to fill", func() bool { return h.up.Status().Queued == 1 })
	if code := q1.errorCode(t, req); code != proto.CodeRateLimited {
		t.Errorf("third request from one peer: %s, want rate limited", code)
	}
	if code := r.requester(t, h).errorCode(t, req); code != proto.CodeFull {
		t.Errorf("request with the queue full: %s, want full", code)
	}
}

// TestUploaderStalledRequester: a requester that stops reading loses its
// slot after StallTimeout, and the next one is served.
func TestUploaderStalledRequester(t *testing.T) {
	r := newRig(t)
	c := newContent(4<<20, 6)
	lib := newTestLib().add(c, c.write(t, t.TempDir(), "a.bin", nil))
	h := r.holder(UploaderConfig{Slots: 1, StallTimeout: 200 * time.Millisecond}, lib, nil)
	stuck := r.requester(t, h).open(t, &proto.RangeRequest{ContentID: c.cid, Offset: 0, Length: 4 << 20})
	defer stuck.CancelRead(proto.CodeOK) // never reads a byte
	waitFor(t, 5*time.Second, "the stuck requester to hold the slot", func() bool { return len(h.up.Status().Active) == 1 })
	start := time.Now()
	st := r.requester(t, h).open(t, &proto.RangeRequest{ContentID: c.cid, Offset: 0, Length: 1 << 20})
	defer st.CancelRead(proto.CodeOK)
	for {
		m, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.Type() == proto.TypeRangeReply {
			break
		}
	}
	if n, err := io.Copy(io.Discard, st); err != nil || n != 1<<20 {
		t.Fatalf("second requester got %d bytes, %v", n, err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("slot freed after %v; want about the 200ms stall timeout", el)
	}
}

// TestUploaderCloseEndsUploads: Close during an upload and with a request
// queued returns once both handlers have ended.
func TestUploaderCloseEndsUploads(t *testing.T) {
	r := newRig(t)
	c := newContent(1<<20, 7)
	lib := newTestLib().add(c, c.write(t, t.TempDir(), "a.bin", nil))
	h := r.holder(UploaderConfig{Slots: 1, MaxRate: 64 << 10}, lib, nil)
	req := &proto.RangeRequest{ContentID: c.cid, Offset: 0, Length: 1 << 20}
	a := r.requester(t, h).open(t, req)
	defer a.CancelRead(proto.CodeOK)
	waitFor(t, 5*time.Second, "the slot to be taken", func() bool { return len(h.up.Status().Active) == 1 })
	b := r.requester(t, h).open(t, req)
	defer b.CancelRead(proto.CodeOK)
	if m, err := b.Recv(); err != nil || m.Type() != proto.TypeQueued {
		t.Fatalf("queued requester: %v, %v", m, err)
	}
	h.up.Close()
	if _, err := b.Recv(); proto.CodeOf(err) != proto.CodeShutdown {
		t.Errorf("queued requester after Close: %v, want a reset with shutting down", err)
	}
	if code := r.requester(t, h).errorCode(t, req); code != proto.CodeShutdown {
		t.Errorf("request after Close: %s, want shutting down", code)
	}
}

func TestBucketPaces(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newBucket(1<<20, t0) // 1 MiB/s, burst 64 KiB
	if d := b.reserve(64<<10, t0); d != 0 {
		t.Fatalf("the burst waits %v", d)
	}
	if d := b.reserve(32<<10, t0); d < 30*time.Millisecond || d > 32*time.Millisecond {
		t.Fatalf("32 KiB past the burst waits %v, want ~31ms", d)
	}
	// Two callers share the debt: the second waits for both.
	if d := b.reserve(32<<10, t0); d < 61*time.Millisecond || d > 63*time.Millisecond {
		t.Fatalf("second caller waits %v, want ~62ms", d)
	}
	// After a long idle the bucket holds only the burst.
	if d := b.reserve(64<<10, t0.Add(time.Hour)); d != 0 {
		t.Fatalf("after idle: %v", d)
	}
	if d := b.reserve(1, t0.Add(time.Hour)); d == 0 {
		t.Fatal("burst refilled beyond its size")
	}
}

// hostOn serves an uploader on an existing transport (quicnet tests).
func hostOn(t testing.TB, tr transport.Transport, lib Library) *holderHost {
	return startHolder(t, tr, NewUploader(UploaderConfig{Logger: zaptest.NewLogger(t)}, lib), nil)
}

func libDir(t *testing.T, c content, name string) (*testLib, string) {
	dir := t.TempDir()
	return newTestLib().add(c, c.write(t, dir, name, nil)), filepath.Join(dir, name)
}

// TestRateCapShared: the cap holds for all uploads together.
func TestRateCapShared(t *testing.T) {
	r := newRig(t)
	c := newContent(1<<20, 8)
	lib := newTestLib().add(c, c.write(t, t.TempDir(), "a.bin", nil))
	const rate = 2 << 20
	h := r.holder(UploaderConfig{Slots: 2, MaxRate: rate}, lib, nil)
	start := time.Now()
	errs := make(chan error, 2)
	for range 2 {
		st := r.requester(t, h).open(t, &proto.RangeRequest{ContentID: c.cid, Offset: 0, Length: 1 << 20})
		go func() {
			defer st.CancelRead(proto.CodeOK)
			if _, err := st.Recv(); err != nil {
				errs <- err
				return
			}
			_, err := io.Copy(io.Discard, st)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := float64(2<<20) / time.Since(start).Seconds(); got > 1.15*rate {
		t.Errorf("two uploads together ran at %.0f B/s over the %d B/s cap", got, rate)
	}
}
