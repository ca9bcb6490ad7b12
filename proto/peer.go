package proto

import (
	"encoding/base32"
	"fmt"
	"strconv"
	"strings"
)

// PeerID identifies a node: the first 20 bytes of the SHA-256 of its Ed25519
// public key (see internal/identity). Both ends of every QUIC connection learn
// and verify each other's PeerID in the TLS handshake.
type PeerID [20]byte

var peerIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// String is the 32-character copyable form, e.g. "k3v7q2...".
func (p PeerID) String() string { return peerIDEncoding.EncodeToString(p[:]) }

// Short is the first 8 characters, for logs and tables.
func (p PeerID) Short() string { return p.String()[:8] }

// IsZero reports whether p is unset.
func (p PeerID) IsZero() bool { return p == PeerID{} }

// ParsePeerID parses the 32-character form (case-insensitive).
func ParsePeerID(s string) (PeerID, error) {
	var p PeerID
	s = strings.ToLower(strings.TrimSpace(s))
	b, err := peerIDEncoding.DecodeString(s)
	if err != nil || len(b) != len(p) {
		return p, fmt.Errorf("peer ID %q: want %d characters of base32 (a-z, 2-7)", s, peerIDEncoding.EncodedLen(len(p)))
	}
	copy(p[:], b)
	return p, nil
}

// MarshalJSON prints the text form in JSON. (not MarshalText: msgpack would use that on the wire)
func (p PeerID) MarshalJSON() ([]byte, error) { return strconv.AppendQuote(nil, p.String()), nil }

// UnmarshalJSON parses the text form.
func (p *PeerID) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("want a quoted string, got %s", b)
	}
	v, err := ParsePeerID(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Role is what a node does in the overlay. Append-only.
type Role uint8

const (
	RoleUnknown   Role = 0
	RoleLeaf      Role = 1
	RoleSupernode Role = 2
	RoleBootstrap Role = 3
)

var roleNames = [...]string{"unknown", "leaf", "supernode", "bootstrap"}

func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// MarshalJSON prints the role name in JSON. (not MarshalText: msgpack would use that on the wire)
func (r Role) MarshalJSON() ([]byte, error) { return strconv.AppendQuote(nil, r.String()), nil }

// UnmarshalJSON parses a role name.
func (r *Role) UnmarshalJSON(b []byte) error {
	s, _ := strconv.Unquote(string(b))
	for i, n := range roleNames {
		if n == s {
			*r = Role(i)
			return nil
		}
	}
	return fmt.Errorf("unknown role %s", b)
}

// Reachability is what a node knows about whether others can dial it.
type Reachability uint8

const (
	ReachUnknown     Reachability = 0
	ReachPublic      Reachability = 1 // a dial-back succeeded
	ReachUnreachable Reachability = 2 // dial-backs failed
)

func (r Reachability) String() string {
	switch r {
	case ReachPublic:
		return "reachable"
	case ReachUnreachable:
		return "unreachable"
	}
	return "unknown"
}

// MarshalJSON prints the reachability in JSON. (not MarshalText: msgpack would use that on the wire)
func (r Reachability) MarshalJSON() ([]byte, error) { return strconv.AppendQuote(nil, r.String()), nil }

// UnmarshalJSON parses the reachability name.
func (r *Reachability) UnmarshalJSON(b []byte) error {
	s, _ := strconv.Unquote(string(b))
	for _, v := range []Reachability{ReachUnknown, ReachPublic, ReachUnreachable} {
		if v.String() == s {
			*r = v
			return nil
		}
	}
	return fmt.Errorf("unknown reachability %s", b)
}

// PeerInfo is how nodes tell each other about a node.
type PeerInfo struct {
	ID        PeerID       `json:"peer_id"`
	Addrs     Addrs        `json:"addrs"`
	Role      Role         `json:"role"`
	Reachable Reachability `json:"reachable"`
	Load      Load         `json:"load"`
}

// Load is a supernode's self-reported occupancy. The bootstrap server uses it
// to spread newcomers; it is never used to decide promotion (that uses only
// what Strata measured itself).
type Load struct {
	Leaves     uint32 `json:"leaves"`
	Capacity   uint32 `json:"capacity"`
	IndexFiles uint32 `json:"index_files"`
	Neighbours uint16 `json:"neighbours"`
}

// Free is the number of leaf slots left.
func (l Load) Free() int { return max(0, int(l.Capacity)-int(l.Leaves)) }
