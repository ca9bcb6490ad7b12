package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"runtime"
	"testing"
)

func sampleEntry(i int) FileEntry {
	var cid ContentID
	binary.BigEndian.PutUint64(cid[:], uint64(i)+1)
	return FileEntry{ContentID: cid, Name: "Random Band - Random Song.mp3", Size: 4356789, Media: MediaAudio,
		Bitrate: 128, SampleRate: 44100, Duration: 271, Artist: "Random Band", Title: "Random Song", Album: "Bändchen"}
}

func samplePeer() PeerInfo {
	return PeerInfo{ID: PeerID{1, 2, 3}, Addrs: []string{"127.0.0.1:7401"}, Role: RoleSupernode, Reachable: ReachPublic,
		Load: Load{Leaves: 3, Capacity: 100, IndexFiles: 3000, Neighbours: 4}}
}

// sampleMessages returns one realistic value of every message type.
func sampleMessages() []Message {
	entries := make(List[FileEntry], 3)
	for i := range entries {
		entries[i] = sampleEntry(i)
	}
	return []Message{
		&Hello{MinVersion: 1, MaxVersion: 1, Role: RoleLeaf, ListenAddrs: []string{"127.0.0.1:7401", "[::1]:7401"}, Agent: "strata/test", Reachable: ReachPublic},
		&ErrorMsg{Code: CodeFull, Message: "no free leaf slots"},
		&Ping{Nonce: 42}, &Pong{Nonce: 42},
		&Goodbye{Reason: "shutting down"},
		&JoinRequest{Role: RoleLeaf},
		&JoinReply{Supernodes: List[PeerInfo]{samplePeer()}, Become: RoleSupernode, ObservedAddr: "127.0.0.1:5555"},
		&Register{Addrs: []string{"127.0.0.1:7401"}, Load: Load{Leaves: 1, Capacity: 10}},
		&RegisterReply{Peers: List[PeerInfo]{samplePeer(), samplePeer()}, HeartbeatMillis: 1000, ExpiryMillis: 3500, Addrs: Addrs{"192.0.2.9:7400"}},
		&Topology{Neighbours: PeerIDs{{1}, {2}}, Leaves: PeerIDs{{3}}},
		&Attach{Files: 3, Others: 1}, &LeafState{Others: 2},
		&AttachReply{Accepted: false, Reason: "full", Redirect: List[PeerInfo]{samplePeer()}},
		&ShareAdd{Entries: entries},
		&ShareRemove{Refs: List[FileRef]{{ContentID: sampleEntry(1).ContentID, Name: "x.mp3"}}},
		&Query{ID: QueryID{9}, TTL: 3, Hops: 1, Text: "random song bitrate>=128", MaxResults: 100},
		&QueryHits{ID: QueryID{9}, Hits: List[Hit]{{Entry: sampleEntry(0), Holder: samplePeer(), Hops: 2},
			{Entry: sampleEntry(1), Holder: samplePeer(), Via: &Via{Supernode: samplePeer(), Ticket: Ticket{7}, Expires: 1700000000}}}},
		&PeerList{Peers: List[PeerInfo]{samplePeer()}},
		&PiecesRequest{ContentID: sampleEntry(1).ContentID, First: 0, Count: 4},
		&Pieces{ContentID: sampleEntry(1).ContentID, Size: 1 << 20, First: 0, Hashes: bytes.Repeat([]byte{7}, 4*32)},
		&RangeRequest{ContentID: sampleEntry(1).ContentID, Offset: 262144, Length: 262144},
		&RangeReply{Offset: 262144, Length: 262144},
		&Queued{Position: 3, Slots: 4},
		&CheckIn{Role: RoleLeaf, Auto: true, Declining: true},
		&CheckInReply{Ask: 1, AcceptYoung: true, Supernodes: 4, Need: 5, Leaves: 120, Reachable: ReachPublic, CheckInMillis: 30000},
		&Probe{Bytes: 256 << 10}, &ProbeGrant{Bytes: 128 << 10, Nonce: 0x0123456789abcdef},
		&ProbeResult{UpBps: 1 << 20, Bytes: 128 << 10}, &ProbeDone{},
		&Move{Peers: List[PeerInfo]{samplePeer(), samplePeer()}, Reason: "stepping down"},
		&Reach{Reachable: ReachUnreachable},
		&ConnectRequest{Target: PeerID{4, 5}, Mode: ConnectRelay, Ticket: Ticket{1, 2}, Expires: 1700000000},
		&ConnectNotice{From: PeerID{6}, Mode: ConnectPunch, Addr: "192.0.2.7:7400", Session: 9, DelayMillis: 150},
		&ConnectReply{Mode: ConnectRelay, Session: 9, MaxBps: 4 << 20, MaxBytes: 1 << 30},
		&RelayJoin{Session: 9},
	}
}

func TestEveryTypeHasSample(t *testing.T) {
	seen := map[MsgType]bool{}
	for _, m := range sampleMessages() {
		seen[m.Type()] = true
	}
	for _, ty := range AllTypes() {
		if !seen[ty] {
			t.Errorf("no sample message for %s: add one so it is round-tripped and fuzzed", ty)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	msgs := sampleMessages()
	for _, m := range msgs {
		if err := w.WriteMsg(m); err != nil {
			t.Fatalf("write %s: %v", m.Type(), err)
		}
	}
	r := NewReader(&buf, 0)
	for _, want := range msgs {
		got, err := r.ReadMsg()
		if err != nil {
			t.Fatalf("read %s: %v", want.Type(), err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s round trip:\n got %+v\nwant %+v", want.Type(), got, want)
		}
	}
	if _, err := r.ReadMsg(); err != io.EOF {
		t.Fatalf("after last frame: got %v, want io.EOF", err)
	}
}

func frame(t MsgType, body []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(t))
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

func mustFrame(t *testing.T, m Message) []byte {
	t.Helper()
	b, err := AppendFrame(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantCode(t *testing.T, err error, code ErrorCode) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("got error %v (%T), want a *proto.Error with code %s", err, err, code)
	}
	if pe.Code != code {
		t.Fatalf("got code %s (%v), want %s", pe.Code, pe, code)
	}
}

func TestBadFrames(t *testing.T) {
	ping := mustFrame(t, &Ping{Nonce: 7})
	lying := append([]byte(nil), ping...)
	binary.BigEndian.PutUint32(lying[2:], 1000) // length says 1000, stream has 2
	cases := []struct {
		name  string
		input []byte
		max   int
		code  ErrorCode
	}{
		{"over cap", frame(TypePing, make([]byte, 100)), 64, CodeFrameTooLarge},
		{"huge length claim", binary.BigEndian.AppendUint32([]byte{0, 3}, 0xffffffff), 0, CodeFrameTooLarge},
		{"truncated header", ping[:3], 0, CodeMalformed},
		{"truncated body", ping[:len(ping)-1], 0, CodeMalformed},
		{"length lies", lying, 0, CodeMalformed},
		{"trailing bytes", frame(TypePing, append(ping[HeaderSize:], 0x01)), 0, CodeMalformed},
		{"wrong field count", frame(TypePing, []byte{0x92, 0x01, 0x02}), 0, CodeMalformed},
		{"reserved code", frame(TypePing, []byte{0x91, 0xc1}), 0, CodeMalformed},
		{"array claims 10M", frame(TypeShareAdd, []byte{0x91, 0xdd, 0x00, 0x98, 0x96, 0x80}), 0, CodeMalformed},
		{"string claims 4GB", frame(TypeGoodbye, []byte{0x91, 0xdb, 0xff, 0xff, 0xff, 0xff}), 0, CodeMalformed},
		{"list over cap", frame(TypePeerList, append([]byte{0x91, 0xdc, 0x01, 0x00}, bytes.Repeat([]byte{0xc0}, 256)...)), 0, CodeMalformed},
		{"nine listen addresses", frame(TypeHello, append([]byte{0x96, 1, 1, 1, 0x99}, append(bytes.Repeat([]byte{0xa1, 'x'}, 9), 0xa0, 0)...)), 0, CodeMalformed},
		{"nil list element", frame(TypePeerList, []byte{0x91, 0x91, 0xc0}), 0, CodeMalformed},
		{"deep nesting", frame(TypeHello, bytes.Repeat([]byte{0x91}, 40)), 0, CodeMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(c.input), c.max).ReadMsg()
			wantCode(t, err, c.code)
		})
	}
}

func TestUnknownTypeSkipped(t *testing.T) {
	in := append(frame(0x7fff, []byte{1, 2, 3}), mustFrame(t, &Ping{Nonce: 5})...)
	r := NewReader(bytes.NewReader(in), 0)
	m, err := r.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := m.(*Ping); !ok || p.Nonce != 5 {
		t.Fatalf("got %#v, want the Ping after the unknown frame", m)
	}
	if r.Skipped != 1 {
		t.Fatalf("Skipped = %d, want 1", r.Skipped)
	}
}

func TestNegotiateVersion(t *testing.T) {
	if v, ok := NegotiateVersion(1, 3, 2, 5); !ok || v != 3 {
		t.Errorf("[1,3]x[2,5] = %d,%v; want 3", v, ok)
	}
	if _, ok := NegotiateVersion(1, 1, 2, 2); ok {
		t.Error("[1,1]x[2,2] negotiated; want no common version")
	}
}

// allocBytes returns the bytes allocated by f, averaged over runs.
func allocBytes(runs int, f func()) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return float64(after.TotalAlloc-before.TotalAlloc) / float64(runs)
}

// TestDecodeAllocationBounded measures that decoding a frame of N bytes
// allocates a small multiple of N: for realistic frames and for adversarial
// ones built to expand (minimal elements, length claims).
func TestDecodeAllocationBounded(t *testing.T) {
	entries := make(List[FileEntry], MaxShareBatch)
	for i := range entries {
		entries[i] = sampleEntry(i)
	}
	realistic, _ := Encode(&ShareAdd{Entries: entries})
	// Adversarial: a PeerList of MaxPeers minimal PeerInfos (5 one-byte fields each).
	minimal := []byte{0x91, 0xdc, 0x00, byte(MaxPeers)}
	for range MaxPeers {
		minimal = append(minimal, 0x95, 0xc0, 0xc0, 0x00, 0x00, 0xc0)
	}
	claim := []byte{0x91, 0xdd, 0x00, 0x98, 0x96, 0x80} // array header claiming 10M entries
	cases := []struct {
		name  string
		t     MsgType
		body  []byte
		limit float64 // allowed bytes allocated per body byte
	}{
		{"realistic 1000-entry share list", TypeShareAdd, realistic, 3},
		{"minimal peer infos", TypePeerList, minimal, 24},
		{"10M element claim", TypeShareAdd, claim, 16},
	}
	for _, c := range cases {
		got := allocBytes(20, func() { _, _ = Decode(c.t, c.body) })
		// A fixed 2 KiB covers the decoder's own per-call overhead.
		allowed := c.limit*float64(len(c.body)) + 2048
		t.Logf("%s: %d-byte body, %.0f bytes allocated (%.1f per body byte), allowed %.0f",
			c.name, len(c.body), got, got/float64(len(c.body)), allowed)
		if got > allowed {
			t.Errorf("%s: %.0f bytes allocated, want <= %.0f", c.name, got, allowed)
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	for _, m := range sampleMessages() {
		b, err := AppendFrame(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), 64<<10)
		for range 8 {
			ty, body, err := r.ReadFrame()
			if err != nil {
				return
			}
			m, err := Decode(ty, body)
			if err != nil {
				var pe *Error
				if !errors.As(err, &pe) {
					t.Fatalf("decode error %v is not a *proto.Error", err)
				}
				continue
			}
			// Whatever decodes must encode again and decode to the same value.
			again, err := AppendFrame(nil, m)
			if err != nil {
				t.Fatalf("re-encode %s: %v", ty, err)
			}
			m2, err := NewReader(bytes.NewReader(again), 0).ReadMsg()
			if err != nil {
				t.Fatalf("re-decode %s: %v", ty, err)
			}
			if !reflect.DeepEqual(m, m2) {
				t.Fatalf("%s not stable: %+v vs %+v", ty, m, m2)
			}
		}
	})
}
