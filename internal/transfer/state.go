package transfer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/zeebo/blake3"

	"github.com/strata-p2p/strata/internal/atomicfile"
	"github.com/strata-p2p/strata/proto"
)

// partial is what a download keeps on disk between runs.
type partial struct {
	cid     proto.ContentID
	name    string
	size    uint64
	pieces  []proto.PieceHash
	have    []byte // bitfield: pieces fsynced in the part file
	started time.Time
}

// State file layout (all integers big-endian):
//
//	magic (16 bytes) | content ID (32) | size (8) | started, Unix ns (8) |
//	name length (2) | name | piece count (4) | piece hashes (32 each) |
//	bitfield (one bit per piece, most significant first) | BLAKE3 of all before (32)
const stateMagic = "strata partial\x00\x01"

// maxPieces bounds the pieces of a file Strata downloads (256 GiB): the
// hash list of a file that size is 32 MiB.
const maxPieces = 1 << 20

const stateSuffix = ".state"

func (p *partial) encode() []byte {
	n := len(p.pieces)
	b := make([]byte, 0, len(stateMagic)+32+8+8+2+len(p.name)+4+32*n+len(p.have)+32)
	b = append(b, stateMagic...)
	b = append(b, p.cid[:]...)
	b = binary.BigEndian.AppendUint64(b, p.size)
	b = binary.BigEndian.AppendUint64(b, uint64(p.started.UnixNano()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.name)))
	b = append(b, p.name...)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	for i := range p.pieces {
		b = append(b, p.pieces[i][:]...)
	}
	b = append(b, p.have...)
	sum := blake3.Sum256(b)
	return append(b, sum[:]...)
}

func decodePartial(b []byte) (*partial, error) {
	if len(b) < len(stateMagic)+32+8+8+2+4+32 || string(b[:len(stateMagic)]) != stateMagic {
		return nil, errors.New("not a Strata partial-download state file")
	}
	body, sum := b[:len(b)-32], b[len(b)-32:]
	if got := blake3.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, errors.New("checksum mismatch (torn or corrupted write)")
	}
	r := body[len(stateMagic):]
	p := &partial{}
	copy(p.cid[:], r)
	r = r[32:]
	p.size = binary.BigEndian.Uint64(r)
	p.started = time.Unix(0, int64(binary.BigEndian.Uint64(r[8:])))
	nl := int(binary.BigEndian.Uint16(r[16:]))
	r = r[18:]
	if len(r) < nl+4 {
		return nil, errors.New("truncated name")
	}
	p.name = string(r[:nl])
	n := int(binary.BigEndian.Uint32(r[nl:]))
	r = r[nl+4:]
	if want := proto.NumPieces(p.size); want != n || n > maxPieces {
		return nil, fmt.Errorf("%d piece hashes for %d bytes", n, p.size)
	}
	if len(r) != 32*n+(n+7)/8 {
		return nil, errors.New("wrong length for the piece list and bitfield")
	}
	p.pieces = make([]proto.PieceHash, n)
	for i := range p.pieces {
		copy(p.pieces[i][:], r[32*i:])
	}
	p.have = bytes.Clone(r[32*n:])
	if err := proto.VerifyPieces(p.cid, p.size, p.pieces); err != nil {
		return nil, err
	}
	if err := checkName(p.name); err != nil {
		return nil, err
	}
	return p, nil
}

func statePath(dir string, cid proto.ContentID) string {
	return filepath.Join(dir, cid.String()+stateSuffix)
}

// savePartial replaces the state file atomically: temp file, fsync,
// rename, fsync of the folder. The caller has fsynced the part file first.
func savePartial(dir string, p *partial) error {
	return atomicfile.WriteFile(statePath(dir, p.cid), p.encode(), 0o600)
}

// loadPartial reads one state file; files larger than any valid state are
// refused before reading.
func loadPartial(path string) (*partial, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if limit := int64(len(stateMagic) + 32 + 8 + 8 + 2 + proto.MaxNameLen + 4 + 33*maxPieces + 32); fi.Size() > limit {
		return nil, fmt.Errorf("%d bytes, larger than any state file", fi.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodePartial(b)
}

// removeStaleTemps removes temp files left by a crash during savePartial.
func removeStaleTemps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), stateSuffix+".tmp-") {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
