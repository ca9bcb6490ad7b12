package proto

import "fmt"

// Reachability messages (0x0080-0x008F): a leaf tells its supernode what
// the dial-backs found, and asks it to get an unreachable peer connected:
// by push (the holder dials the asker), hole punching (both dial at once
// from their listening sockets) or relay (the supernode carries the two
// peers' own QUIC packets, which it cannot read or alter).
const (
	TypeReach          MsgType = 0x0080
	TypeConnectRequest MsgType = 0x0081
	TypeConnectNotice  MsgType = 0x0082
	TypeConnectReply   MsgType = 0x0083
	TypeRelayJoin      MsgType = 0x0084
)

// ConnectMode is how a ConnectRequest wants the two peers connected.
// Append-only.
type ConnectMode uint8

const (
	ConnectPush  ConnectMode = 1 // the target dials the asker
	ConnectPunch ConnectMode = 2 // both dial each other at the same moment
	ConnectRelay ConnectMode = 3 // the supernode relays their packets
)

var connectModeNames = [...]string{"", "push", "punch", "relay"}

func (m ConnectMode) String() string {
	if int(m) < len(connectModeNames) && m != 0 {
		return connectModeNames[m]
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// MaxRelayPacket bounds one relayed packet (a QUIC packet of the two peers,
// which disable path MTU discovery on a relayed path).
const MaxRelayPacket = 1500

// Reach tells the leaf's supernode, on a new stream, what the latest
// dial-back found; the supernode updates the reachability its hits carry
// and answers Pong.
type Reach struct {
	Reachable Reachability
}

// ConnectRequest asks a supernode, on a new stream, to get Target (its
// leaf) connected to the sender. The sender is attached to that supernode
// too, or presents the Ticket (and its Expires) of a hit for Target that
// the supernode issued (Hit.Via). No address is named: the supernode uses
// the address it sees the sender's connection come from, so a request
// cannot make a peer dial a victim.
type ConnectRequest struct {
	Target  PeerID
	Mode    ConnectMode
	Ticket  Ticket
	Expires int64
}

// ConnectNotice is what the supernode sends the target on its leaf
// session: push or punch: dial From at Addr (punch: after DelayMillis);
// relay: open a stream with RelayJoin{Session}.
type ConnectNotice struct {
	From        PeerID
	Mode        ConnectMode
	Addr        string
	Session     uint64
	DelayMillis uint32
}

// ConnectReply answers a ConnectRequest (and a RelayJoin): punch: the
// target's observed Addr and when to dial; relay: the session and its
// limits (bytes per second and bytes in all, both directions together).
// After a relay reply the stream carries relayed packets, each a 2-byte
// big-endian length and that many bytes, until either end closes it.
type ConnectReply struct {
	Mode        ConnectMode
	Addr        string
	Session     uint64
	DelayMillis uint32
	MaxBps      uint64
	MaxBytes    uint64
}

// RelayJoin is the target's side of a relay session, on a new stream to
// its supernode; it is answered ConnectReply, then packets flow.
type RelayJoin struct {
	Session uint64
}

func (*Reach) Type() MsgType          { return TypeReach }
func (*ConnectRequest) Type() MsgType { return TypeConnectRequest }
func (*ConnectNotice) Type() MsgType  { return TypeConnectNotice }
func (*ConnectReply) Type() MsgType   { return TypeConnectReply }
func (*RelayJoin) Type() MsgType      { return TypeRelayJoin }

func newReach(t MsgType) Message {
	switch t {
	case TypeReach:
		return new(Reach)
	case TypeConnectRequest:
		return new(ConnectRequest)
	case TypeConnectNotice:
		return new(ConnectNotice)
	case TypeConnectReply:
		return new(ConnectReply)
	case TypeRelayJoin:
		return new(RelayJoin)
	}
	return nil
}
