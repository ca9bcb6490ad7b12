package proto

import (
	"fmt"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// List is a slice that decodes element by element with a per-type length cap,
// instead of msgpack's default of allocating as many elements as the header
// claims. Each element must be a complete array-encoded struct, so a list of
// n elements costs at least n*(fields+1) bytes on the wire and decoding stays
// O(frame size).
type List[T any] []T

// DecodeMsgpack implements msgpack.CustomDecoder.
func (l *List[T]) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n < 0 {
		*l = nil
		return nil
	}
	var zero T
	if c := listCap(zero); n > c {
		return fmt.Errorf("list of %T has %d elements, over the cap of %d", zero, n, c)
	}
	// Each element is an array of every field of T, so takes at least
	// fields+1 bytes: size the slice by what the bytes left can hold.
	prealloc := min(n, 16)
	if r, ok := d.Buffered().(interface{ Len() int }); ok {
		prealloc = min(n, r.Len()/(reflect.TypeFor[T]().NumField()+1))
	}
	out := make([]T, 0, prealloc)
	for i := range n {
		c, err := d.PeekCode()
		if err != nil {
			return err
		}
		if !msgpcode.IsFixedArray(c) && c != msgpcode.Array16 && c != msgpcode.Array32 {
			return fmt.Errorf("list element %d of %T is not an array", i, zero)
		}
		out = append(out, zero)
		if err := d.Decode(&out[len(out)-1]); err != nil {
			return fmt.Errorf("list element %d: %w", i, err)
		}
	}
	*l = out
	return nil
}

func listCap(v any) int {
	switch v.(type) {
	case PeerInfo:
		return MaxPeers
	case FileEntry, FileRef:
		return MaxShareBatch
	case Hit:
		return MaxHitsPerFrame
	}
	return 1024
}

// Addrs is a list of "host:port" strings capped at MaxAddrs entries of at
// most MaxAddrLen bytes each; longer lists or entries fail to decode.
type Addrs []string

// MaxAddrLen bounds one address string.
const MaxAddrLen = 255

// DecodeMsgpack implements msgpack.CustomDecoder.
func (a *Addrs) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n < 0 {
		*a = nil
		return nil
	}
	if n > MaxAddrs {
		return fmt.Errorf("%d addresses, over the cap of %d", n, MaxAddrs)
	}
	out := make([]string, 0, n)
	for range n {
		s, err := d.DecodeString()
		if err != nil {
			return err
		}
		if len(s) > MaxAddrLen {
			return fmt.Errorf("address of %d bytes, over the cap of %d", len(s), MaxAddrLen)
		}
		out = append(out, s)
	}
	*a = out
	return nil
}

// PeerIDs is a list of peer IDs capped at MaxTopologyIDs; every element must
// be 20 bytes of binary.
type PeerIDs []PeerID

// MaxTopologyIDs bounds a PeerIDs list.
const MaxTopologyIDs = 4096

// DecodeMsgpack implements msgpack.CustomDecoder.
func (p *PeerIDs) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n < 0 {
		*p = nil
		return nil
	}
	if n > MaxTopologyIDs {
		return fmt.Errorf("%d peer IDs, over the cap of %d", n, MaxTopologyIDs)
	}
	out := make([]PeerID, min(n, 64))[:0]
	for range n {
		l, err := d.DecodeBytesLen()
		if err != nil {
			return err
		}
		if l != len(PeerID{}) {
			return fmt.Errorf("peer ID of %d bytes, want %d", l, len(PeerID{}))
		}
		var id PeerID
		if err := d.ReadFull(id[:]); err != nil {
			return err
		}
		out = append(out, id)
	}
	*p = out
	return nil
}
