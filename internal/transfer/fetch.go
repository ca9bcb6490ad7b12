package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/proto"
)

// requestPieces fetches the whole piece-hash list of cid from sess, as many
// PiecesRequests as the holder needs, and checks it against cid.
func requestPieces(ctx context.Context, sess *session.Session, cid proto.ContentID, stall time.Duration) (uint64, []proto.PieceHash, error) {
	hashes := []proto.PieceHash{}
	var size uint64
	known := false
	for {
		before := len(hashes)
		err := func() error {
			st, err := openStream(ctx, sess, stall)
			if err != nil {
				return err
			}
			defer resetOnDone(ctx, st)()
			defer st.CancelRead(proto.CodeOK)
			_ = st.SetDeadline(time.Now().Add(stall))
			if err := st.Send(&proto.PiecesRequest{ContentID: cid, First: uint32(len(hashes)), Count: math.MaxUint32}); err != nil {
				return netError(err, stall)
			}
			_ = st.Close()
			for {
				_ = st.SetReadDeadline(time.Now().Add(stall))
				m, err := st.Recv()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return netError(err, stall)
				}
				switch m := m.(type) {
				case *proto.Pieces:
					if m.ContentID != cid || int(m.First) != len(hashes) || len(m.Hashes)%32 != 0 || (known && m.Size != size) {
						return &sourceError{reason: "protocol error: piece list frame does not continue the list asked for", permanent: true}
					}
					if !known {
						size, known = m.Size, true
					}
					n := proto.NumPieces(size)
					if n < 0 || n > maxPieces {
						return &sourceError{reason: fmt.Sprintf("announced a %d-byte file, larger than Strata downloads", size), permanent: true}
					}
					if len(hashes)+len(m.Hashes)/32 > n {
						return &sourceError{reason: "sent a piece list that does not match the content ID", permanent: true}
					}
					for b := m.Hashes; len(b) > 0; b = b[32:] {
						hashes = append(hashes, proto.PieceHash(b[:32]))
					}
				case *proto.ErrorMsg:
					return remoteError(m)
				default:
					return &sourceError{reason: "protocol error: sent " + m.Type().String() + " for a piece list", permanent: true}
				}
			}
		}()
		if err != nil {
			return 0, nil, err
		}
		if !known {
			return 0, nil, &sourceError{reason: "closed the stream without a piece list"}
		}
		if len(hashes) >= proto.NumPieces(size) {
			break
		}
		if len(hashes) == before {
			return 0, nil, &sourceError{reason: "piece list cut short"}
		}
	}
	if err := proto.VerifyPieces(cid, size, hashes); err != nil {
		return 0, nil, &sourceError{reason: "sent a piece list that does not match the content ID", permanent: true}
	}
	return size, hashes, nil
}

// openStream opens a stream, giving up after stall (a peer whose stream
// limit is used up).
func openStream(ctx context.Context, sess *session.Session, stall time.Duration) (*session.Stream, error) {
	octx, cancel := context.WithTimeout(ctx, stall)
	defer cancel()
	st, err := sess.Open(octx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, netError(err, stall)
	}
	return st, nil
}

// fetchRange asks h for assignment a and writes every piece that verifies
// and is still missing. It stops early when every remaining piece arrived
// from another source.
func (d *download) fetchRange(ctx context.Context, sess *session.Session, h *holder, a *assignment, buf []byte) error {
	stall := d.m.cfg.StallTimeout
	off := uint64(a.first) * proto.PieceSize
	end := min(uint64(a.first+a.count)*proto.PieceSize, d.size)
	st, err := openStream(ctx, sess, stall)
	if err != nil {
		return err
	}
	defer resetOnDone(ctx, st)()
	defer st.CancelRead(proto.CodeOK)
	_ = st.SetWriteDeadline(time.Now().Add(stall))
	if err := st.Send(&proto.RangeRequest{ContentID: d.cid, Offset: off, Length: end - off}); err != nil {
		return netError(err, stall)
	}
	_ = st.Close()
	if err := d.awaitReply(st, h, off, end-off); err != nil {
		return err
	}
	d.mu.Lock()
	d.pick.receiving(a, time.Now())
	h.state, h.queuePos = SourceActive, 0
	d.mu.Unlock()

	r := &stallReader{st: st, stall: stall}
	written := false
	for i := a.first; i < a.first+a.count; i++ {
		n := pieceLen(d.size, i)
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return &sourceError{reason: "truncated range"}
			}
			return netError(err, stall)
		}
		if proto.HashPiece(buf[:n]) != d.pieces[i] {
			return &sourceError{reason: fmt.Sprintf("sent a bad piece %d", i), permanent: true}
		}
		d.mu.Lock()
		want := d.pick.wanted(i)
		d.mu.Unlock()
		if want {
			if _, err := d.part.WriteAt(buf[:n], int64(i)*proto.PieceSize); err != nil {
				return &fatalError{fmt.Errorf("writing %s: %w; free space in %s, then Get it again", d.partPath(), err, d.m.cfg.Dir)}
			}
			written = true
		}
		d.mu.Lock()
		d.pick.done(a, i)
		h.bytes += uint64(n)
		complete, obsolete := d.pick.complete(), d.pick.obsolete(a, i+1)
		d.notifyLocked()
		d.mu.Unlock()
		if complete {
			d.signal()
		}
		if obsolete {
			break
		}
	}
	if written {
		startWriteback(d.part, int64(off), int64(end-off))
	}
	return nil
}

// awaitReply reads Queued messages until the RangeReply.
func (d *download) awaitReply(st *session.Stream, h *holder, off, length uint64) error {
	stall := d.m.cfg.StallTimeout
	for {
		_ = st.SetReadDeadline(time.Now().Add(stall))
		m, err := st.Recv()
		if err == io.EOF {
			return &sourceError{reason: "closed the stream without answering"}
		}
		if err != nil {
			return netError(err, stall)
		}
		switch m := m.(type) {
		case *proto.Queued:
			d.mu.Lock()
			h.state, h.queuePos = SourceQueued, int(m.Position)
			d.mu.Unlock()
		case *proto.RangeReply:
			if m.Offset != off || m.Length != length {
				return &sourceError{reason: fmt.Sprintf("protocol error: answered range %d+%d for %d+%d", m.Offset, m.Length, off, length), permanent: true}
			}
			_ = st.SetReadDeadline(time.Time{})
			return nil
		case *proto.ErrorMsg:
			return remoteError(m)
		default:
			return &sourceError{reason: "protocol error: sent " + m.Type().String() + " for a range", permanent: true}
		}
	}
}

// remoteError turns a holder's ErrorMsg into why it is dropped.
func remoteError(m *proto.ErrorMsg) error {
	switch m.Code {
	case proto.CodeNotFound:
		return &sourceError{reason: "not found", permanent: true}
	case proto.CodeBadRequest:
		return &sourceError{reason: "refused: " + (&proto.Error{Code: m.Code, Msg: m.Message}).Error(), permanent: true}
	}
	return &sourceError{reason: "refused: " + (&proto.Error{Code: m.Code, Msg: m.Message}).Error()}
}

// netError classifies a stream error: a deadline is a stall, a frame we
// cannot read is the holder's fault, anything else a lost connection.
func netError(err error, stall time.Duration) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &sourceError{reason: fmt.Sprintf("stalled %v", stall)}
	}
	var pe *proto.Error
	if errors.As(err, &pe) {
		switch pe.Code {
		case proto.CodeMalformed, proto.CodeFrameTooLarge, proto.CodeProtocol:
			return &sourceError{reason: "protocol error: " + pe.Error(), permanent: true}
		}
	}
	return &sourceError{reason: "connection lost: " + err.Error()}
}

// stallReader reads with a deadline that moves forward as bytes arrive:
// the read fails only when the source sends nothing for about stall.
type stallReader struct {
	st    *session.Stream
	stall time.Duration
	set   time.Time
}

func (r *stallReader) Read(p []byte) (int, error) {
	if now := time.Now(); now.Sub(r.set) > r.stall/8 {
		_ = r.st.SetReadDeadline(now.Add(r.stall))
		r.set = now
	}
	return r.st.Read(p)
}
