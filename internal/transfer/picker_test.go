package transfer

import (
	"testing"
	"time"

	"github.com/strata-p2p/strata/proto"
)

func TestPickerChunksInOrder(t *testing.T) {
	p := newPicker(10*proto.PieceSize+1, 4, nil) // 11 pieces
	a, b := &holder{}, &holder{}
	now := time.Unix(0, 0)
	x := p.pick(a, now, true)
	y := p.pick(b, now, true)
	z := p.pick(a, now, true)
	if x.first != 0 || x.count != 4 || y.first != 4 || y.count != 4 || z.first != 8 || z.count != 3 {
		t.Fatalf("chunks %d+%d %d+%d %d+%d", x.first, x.count, y.first, y.count, z.first, z.count)
	}
	// y fails after two pieces: the other two go back to the pool.
	p.done(y, 4)
	p.done(y, 5)
	p.release(y)
	w := p.pick(b, now, true)
	if w.first != 6 || w.count != 2 || w.dupOf != nil {
		t.Fatalf("after a failure: %d+%d dup=%v, want 6+2", w.first, w.count, w.dupOf != nil)
	}
	if p.bytes != 2*proto.PieceSize || p.left != 9 {
		t.Fatalf("bytes %d left %d", p.bytes, p.left)
	}
}

func TestPickerEndgame(t *testing.T) {
	p := newPicker(8*proto.PieceSize, 4, nil)
	slow, fast, queued, idle := &holder{}, &holder{}, &holder{}, &holder{}
	t0 := time.Unix(0, 0)
	a := p.pick(slow, t0, true)
	b := p.pick(fast, t0, true)
	slow.since, fast.since = t0, t0
	p.done(a, 0) // slow: 1 piece in 10 s
	slow.bytes = proto.PieceSize
	for i := 4; i < 7; i++ {
		p.done(b, i) // fast: 3 pieces in 10 s
	}
	fast.bytes = 3 * proto.PieceSize
	now := t0.Add(10 * time.Second)
	// Nothing unclaimed: the idle source duplicates the slowest's rest.
	d := p.pick(idle, now, true)
	if d == nil || d.dupOf != a || d.first != 1 || d.count != 3 {
		t.Fatalf("endgame pick %+v, want a duplicate of pieces 1-3", d)
	}
	// Each assignment is duplicated once; the next goes to the fast one.
	e := p.pick(queued, now, true)
	if e == nil || e.dupOf != b || e.first != 7 || e.count != 1 {
		t.Fatalf("second endgame pick %+v, want piece 7", e)
	}
	if p.pick(&holder{}, now, true) != nil {
		t.Fatal("a third source got work with everything duplicated")
	}
	// A piece arriving through the duplicate makes the original obsolete past it.
	p.done(d, 1)
	p.done(d, 2)
	p.done(d, 3)
	if !p.obsolete(a, 1) {
		t.Fatal("original not obsolete after its duplicate delivered")
	}
	if p.done(a, 1) {
		t.Fatal("a piece counted twice")
	}
	p.release(d)
	if a.dups != 0 {
		t.Fatal("release of a duplicate did not clear dups")
	}
}

func TestPickerQueuedDuplicatedFirst(t *testing.T) {
	p := newPicker(8*proto.PieceSize, 4, nil)
	q, r, idle := &holder{}, &holder{}, &holder{}
	now := time.Unix(100, 0)
	a := p.pick(q, now, true)
	a.queued = true
	b := p.pick(r, now, true)
	r.since, r.bytes = now.Add(-time.Second), proto.PieceSize
	p.done(b, 4)
	if p.pick(idle, now, false) != nil {
		t.Fatal("a pick without dup duplicated")
	}
	if d := p.pick(idle, now, true); d == nil || d.dupOf != a {
		t.Fatalf("idle source did not take over the queued assignment: %+v", d)
	}
}

func TestPickerResumeAndBitfield(t *testing.T) {
	have := make([]bool, 20)
	have[0], have[9], have[19] = true, true, true
	p := newPicker(20*proto.PieceSize-7, 16, have)
	if p.left != 17 || p.bytes != 3*proto.PieceSize-7 {
		t.Fatalf("left %d bytes %d", p.left, p.bytes)
	}
	bits := p.bitfield()
	if len(bits) != 3 || bits[0] != 0x80 || bits[1] != 0x40 || bits[2] != 0x10 {
		t.Fatalf("bitfield %08b", bits)
	}
	back := bitsToBools(bits, 20)
	for i := range have {
		if back[i] != have[i] {
			t.Fatalf("piece %d round trip", i)
		}
	}
	a := p.pick(&holder{}, time.Now(), true)
	if a.first != 1 || a.count != 8 {
		t.Fatalf("first pick %d+%d, want 1+8 (stops at the piece already had)", a.first, a.count)
	}
	if empty := newPicker(0, 4, nil); !empty.complete() || empty.pick(&holder{}, time.Now(), true) != nil {
		t.Fatal("empty file")
	}
}
