package proto

import "fmt"

// MsgType is the first field of every frame. APPEND-ONLY: never renumber or
// reuse a value; add new types at the end of their block.
type MsgType uint16

const (
	// Session.
	TypeHello   MsgType = 0x0001
	TypeError   MsgType = 0x0002
	TypePing    MsgType = 0x0003
	TypePong    MsgType = 0x0004
	TypeGoodbye MsgType = 0x0005

	// Bootstrap.
	TypeJoinRequest   MsgType = 0x0010
	TypeJoinReply     MsgType = 0x0011
	TypeRegister      MsgType = 0x0012
	TypeRegisterReply MsgType = 0x0013
	TypeTopology      MsgType = 0x0014

	// Leaf and supernode.
	TypeAttach      MsgType = 0x0020
	TypeAttachReply MsgType = 0x0021
	TypeShareAdd    MsgType = 0x0022
	TypeShareRemove MsgType = 0x0023
	TypeLeafState   MsgType = 0x0024

	// Search.
	TypeQuery     MsgType = 0x0030
	TypeQueryHits MsgType = 0x0031

	// Supernode mesh.
	TypePeerList MsgType = 0x0040

	// Transfers (peer to peer).
	TypePiecesRequest MsgType = 0x0050
	TypePieces        MsgType = 0x0051
	TypeRangeRequest  MsgType = 0x0052
	TypeRangeReply    MsgType = 0x0053
	TypeQueued        MsgType = 0x0054

	// Promotion (node and bootstrap server; supernode and leaf for Move).
	TypeCheckIn      MsgType = 0x0060
	TypeCheckInReply MsgType = 0x0061
	TypeProbe        MsgType = 0x0062
	TypeProbeGrant   MsgType = 0x0063
	TypeProbeResult  MsgType = 0x0064
	TypeProbeDone    MsgType = 0x0065
	TypeMove         MsgType = 0x0066
)

// Message is any body that can be framed.
type Message interface{ Type() MsgType }

// Limits on lists inside messages; decoders refuse longer lists.
const (
	MaxShareBatch    = 1000 // entries in one ShareAdd/ShareRemove frame
	MaxSharesPerLeaf = 5000 // files one leaf may have indexed (Napster's cap)
	MaxPeers         = 200  // entries in a PeerList or a JoinReply (KaZaA handed out 200)
	MaxHitsPerFrame  = 100
	MaxAddrs         = 8    // listen addresses in a Hello or PeerInfo
	MaxQueryText     = 256  // bytes
	MaxTTL           = 7    // larger TTLs are clamped
	MaxText          = 1024 // bytes in error and goodbye messages
)

// Hello is the first message on a connection's control stream, both ways.
type Hello struct {
	MinVersion  uint16
	MaxVersion  uint16
	Role        Role
	ListenAddrs Addrs
	Agent       string // e.g. "strata/0.1.0"
	Reachable   Reachability
}

// ErrorMsg tells the other end why a request failed before the stream closes.
type ErrorMsg struct {
	Code    ErrorCode
	Message string
}

// Ping asks for a Pong with the same nonce (liveness and round-trip time).
type Ping struct {
	Nonce uint64
}

// Pong answers a Ping.
type Pong struct {
	Nonce uint64
}

// Goodbye says the sender is closing the session on purpose (a leaf leaving,
// a supernode shutting down), so the receiver can act at once.
type Goodbye struct {
	Reason string
}

// JoinRequest asks a bootstrap server for supernodes to attach to.
type JoinRequest struct {
	Role Role // the role the node runs with: leaf, supernode, or unknown for auto
}

// JoinReply lists supernodes, those with free slots first. Become is
// RoleSupernode in the answer to a node joining as a supernode (Supernodes is
// then a sample to peer with); other nodes are asked to step up by the
// promotion planner (CheckInReply), not here.
type JoinReply struct {
	Supernodes   List[PeerInfo]
	Become       Role
	ObservedAddr string // the address the bootstrap saw the request come from
}

// Register announces a supernode to a bootstrap server and doubles as its
// heartbeat.
type Register struct {
	Addrs Addrs
	Load  Load
}

// RegisterReply gives a supernode other supernodes to peer with and the
// heartbeat interval the bootstrap expects.
type RegisterReply struct {
	Peers           List[PeerInfo]
	HeartbeatMillis uint32
	ExpiryMillis    uint32
	// Addrs are the supernode's addresses as the bootstrap hands them out
	// (an unspecified host replaced by the one the request came from): a
	// supernode bound to a wildcard learns from them where it is reached.
	Addrs Addrs
}

// Topology tells a bootstrap server a supernode's neighbours and leaves, for
// its network map. It follows each Register and is answered with a Pong.
type Topology struct {
	Neighbours PeerIDs
	Leaves     PeerIDs
}

// Attach asks a supernode to take the sender as a leaf.
type Attach struct {
	Files uint32 // how many files the leaf will upload
	// Others is how many other supernodes answer the leaf now. A full
	// supernode asked by a leaf with none gives it the slot of a leaf that
	// has another (a leaf's only supernode comes before another's spare).
	Others uint8
}

// LeafState tells a supernode, on the leaf's session stream, how many other
// supernodes answer the leaf now, whenever that changes.
type LeafState struct {
	Others uint8
}

// AttachReply accepts or refuses a leaf; a refusal lists other supernodes.
type AttachReply struct {
	Accepted bool
	Reason   string
	Redirect List[PeerInfo]
}

// ShareAdd adds files to the leaf's entry in its supernode's index.
type ShareAdd struct {
	Entries List[FileEntry]
}

// FileRef names a file a leaf no longer shares.
type FileRef struct {
	ContentID ContentID
	Name      string
}

// ShareRemove removes files from the leaf's entry.
type ShareRemove struct {
	Refs List[FileRef]
}

// QueryID identifies a query across the mesh for duplicate suppression and
// reverse-path routing of hits.
type QueryID [16]byte

func (q QueryID) String() string { return fmt.Sprintf("%x", q[:]) }

// Query is a search. A leaf sends it to its supernode on a new stream and
// reads QueryHits until the stream ends; supernodes forward it to their
// neighbours with TTL-1 and Hops+1 (Gnutella's rules).
type Query struct {
	ID         QueryID
	TTL        uint8
	Hops       uint8
	Text       string
	MaxResults uint16
}

// Hit is one matching file and who holds it.
type Hit struct {
	Entry  FileEntry `json:"file"`
	Holder PeerInfo  `json:"holder"`
	Hops   uint8     `json:"hops"` // supernode hops from the asker's supernode
	// Via is set when the holder is not known to be reachable: the supernode it is
	// attached to, which pushes, punches or relays to it for whoever
	// presents the ticket (the asker need not share that supernode).
	Via *Via `json:"via,omitempty"`
}

// Via is an unreachable holder's supernode and a ticket it issued: proof,
// until Expires (Unix seconds), that the bearer found the holder in a
// search, which lets a peer that is not its leaf ask it to connect them.
type Via struct {
	Supernode PeerInfo `json:"supernode"`
	Ticket    Ticket   `json:"-"`
	Expires   int64    `json:"expires"`
}

// Ticket is a supernode's MAC of a holder's peer ID and an expiry.
type Ticket [16]byte

// QueryHits carries hits for a query back along the path it came.
type QueryHits struct {
	ID   QueryID
	Hits List[Hit]
}

// PeerList tells a neighbour about other supernodes.
type PeerList struct {
	Peers List[PeerInfo]
}

// PiecesRequest asks a holder for part of a file's piece-hash list.
type PiecesRequest struct {
	ContentID ContentID
	First     uint32 // index of the first piece hash wanted
	Count     uint32 // how many (the holder may send fewer: MaxHashesPerFrame)
}

// Pieces answers a PiecesRequest. Hashes is the concatenation of the
// requested piece hashes, 32 bytes each. The downloader checks the whole
// list against the content ID (proto.VerifyPieces) before using any of it.
type Pieces struct {
	ContentID ContentID
	Size      uint64 // file size in bytes
	First     uint32
	Hashes    []byte
}

// RangeRequest asks for bytes [Offset, Offset+Length) of a file. The
// holder answers Queued while the requester waits for an upload slot, then
// RangeReply followed by exactly Length raw bytes on the stream, then FIN;
// or an ErrorMsg (not found, bad request for a range outside the file, full
// when the queue is full).
type RangeRequest struct {
	ContentID ContentID
	Offset    uint64
	Length    uint64
}

// RangeReply precedes the raw bytes of a range.
type RangeReply struct {
	Offset uint64
	Length uint64
}

// Queued tells a requester its place in the upload queue (Gnutella's PARQ).
// It is sent again when the place changes.
type Queued struct {
	Position uint32 // 1 = next
	Slots    uint32 // upload slots the holder has
}

// CheckIn is a node's periodic report to a bootstrap server for promotion:
// its role, whether it follows the promotion engine (Auto: --role auto) and
// whether it would refuse to step up now (Declining). The server believes
// only what can lower the node's chances: Declining, a pinned role, and a
// registered supernode saying it is a leaf again (which deregisters it).
// Capacity is never claimed: the server measures it (dial-back, Probe).
type CheckIn struct {
	Role      Role
	Auto      bool
	Declining bool
}

// CheckInReply is the network's demand for the node, as the bootstrap
// server's planner computed it, and what the server measured of the node.
// Ask is 0 (none), 1 (step up) or 2 (step down); AcceptYoung waives the
// uptime gate. Supernodes, Need and Leaves are the server's counts.
// Reachable is the result of the server's dial-back to the node's
// advertised address (ReachUnknown while it is in progress).
// CheckInMillis is how often the server wants check-ins.
type CheckInReply struct {
	Ask           uint8
	AcceptYoung   bool
	Supernodes    uint32
	Need          uint32
	Leaves        uint32
	Reachable     Reachability
	CheckInMillis uint32
}

// Probe asks for a bandwidth probe of Bytes each way. It opens its stream;
// the server answers ProbeGrant (or an ErrorMsg: probes are answered only
// for nodes the server knows, and are rate limited).
type Probe struct {
	Bytes uint32
}

// ProbeGrant is how many bytes the probe moves each way (at most what was
// asked, at most the server's cap). The node then sends exactly Bytes raw
// bytes on the stream, paced by its upload cap: Nonce, 8 bytes big-endian,
// over and over (the last copy cut short), so none of them can have been
// sent before the grant.
type ProbeGrant struct {
	Bytes uint32
	Nonce uint64
}

// ProbeResult follows the node's bytes: the rate at which the server
// received them (the node's upload as the server measured it). Exactly
// Bytes raw bytes follow it, which the node times (its download), then
// answers ProbeDone.
type ProbeResult struct {
	UpBps uint64
	Bytes uint32
}

// ProbeDone tells the server the node has read every byte, so the server
// can time the download direction itself.
type ProbeDone struct{}

// Move tells a leaf, on its attachment's control stream, that its supernode
// is stepping down: the leaf attaches to one of Peers (or to any supernode a
// bootstrap server names) first, and only then says Goodbye to the old
// supernode, so its files stay searchable throughout.
type Move struct {
	Peers  List[PeerInfo]
	Reason string
}

func (*Hello) Type() MsgType         { return TypeHello }
func (*ErrorMsg) Type() MsgType      { return TypeError }
func (*Ping) Type() MsgType          { return TypePing }
func (*Pong) Type() MsgType          { return TypePong }
func (*Goodbye) Type() MsgType       { return TypeGoodbye }
func (*JoinRequest) Type() MsgType   { return TypeJoinRequest }
func (*JoinReply) Type() MsgType     { return TypeJoinReply }
func (*Register) Type() MsgType      { return TypeRegister }
func (*RegisterReply) Type() MsgType { return TypeRegisterReply }
func (*Topology) Type() MsgType      { return TypeTopology }
func (*Attach) Type() MsgType        { return TypeAttach }
func (*AttachReply) Type() MsgType   { return TypeAttachReply }
func (*LeafState) Type() MsgType     { return TypeLeafState }
func (*ShareAdd) Type() MsgType      { return TypeShareAdd }
func (*ShareRemove) Type() MsgType   { return TypeShareRemove }
func (*Query) Type() MsgType         { return TypeQuery }
func (*QueryHits) Type() MsgType     { return TypeQueryHits }
func (*PeerList) Type() MsgType      { return TypePeerList }
func (*PiecesRequest) Type() MsgType { return TypePiecesRequest }
func (*Pieces) Type() MsgType        { return TypePieces }
func (*RangeRequest) Type() MsgType  { return TypeRangeRequest }
func (*RangeReply) Type() MsgType    { return TypeRangeReply }
func (*Queued) Type() MsgType        { return TypeQueued }
func (*CheckIn) Type() MsgType       { return TypeCheckIn }
func (*CheckInReply) Type() MsgType  { return TypeCheckInReply }
func (*Probe) Type() MsgType         { return TypeProbe }
func (*ProbeGrant) Type() MsgType    { return TypeProbeGrant }
func (*ProbeResult) Type() MsgType   { return TypeProbeResult }
func (*ProbeDone) Type() MsgType     { return TypeProbeDone }
func (*Move) Type() MsgType          { return TypeMove }

// New returns an empty message of type t, or nil when t is unknown.
func New(t MsgType) Message {
	switch t {
	case TypeHello:
		return new(Hello)
	case TypeError:
		return new(ErrorMsg)
	case TypePing:
		return new(Ping)
	case TypePong:
		return new(Pong)
	case TypeGoodbye:
		return new(Goodbye)
	case TypeJoinRequest:
		return new(JoinRequest)
	case TypeJoinReply:
		return new(JoinReply)
	case TypeRegister:
		return new(Register)
	case TypeRegisterReply:
		return new(RegisterReply)
	case TypeTopology:
		return new(Topology)
	case TypeAttach:
		return new(Attach)
	case TypeAttachReply:
		return new(AttachReply)
	case TypeLeafState:
		return new(LeafState)
	case TypeShareAdd:
		return new(ShareAdd)
	case TypeShareRemove:
		return new(ShareRemove)
	case TypeQuery:
		return new(Query)
	case TypeQueryHits:
		return new(QueryHits)
	case TypePeerList:
		return new(PeerList)
	case TypePiecesRequest:
		return new(PiecesRequest)
	case TypePieces:
		return new(Pieces)
	case TypeRangeRequest:
		return new(RangeRequest)
	case TypeRangeReply:
		return new(RangeReply)
	case TypeQueued:
		return new(Queued)
	case TypeCheckIn:
		return new(CheckIn)
	case TypeCheckInReply:
		return new(CheckInReply)
	case TypeProbe:
		return new(Probe)
	case TypeProbeGrant:
		return new(ProbeGrant)
	case TypeProbeResult:
		return new(ProbeResult)
	case TypeProbeDone:
		return new(ProbeDone)
	case TypeMove:
		return new(Move)
	}
	return newReach(t)
}

// AllTypes lists every known type, for tests and fuzz seeds.
func AllTypes() []MsgType {
	return []MsgType{TypeHello, TypeError, TypePing, TypePong, TypeGoodbye,
		TypeJoinRequest, TypeJoinReply, TypeRegister, TypeRegisterReply, TypeTopology,
		TypeAttach, TypeAttachReply, TypeShareAdd, TypeShareRemove, TypeLeafState,
		TypeQuery, TypeQueryHits, TypePeerList,
		TypePiecesRequest, TypePieces, TypeRangeRequest, TypeRangeReply, TypeQueued,
		TypeCheckIn, TypeCheckInReply, TypeProbe, TypeProbeGrant, TypeProbeResult, TypeProbeDone, TypeMove,
		TypeReach, TypeConnectRequest, TypeConnectNotice, TypeConnectReply, TypeRelayJoin}
}

func (t MsgType) String() string {
	if m := New(t); m != nil {
		return fmt.Sprintf("%T", m)[7:] // "*proto.Hello" -> "Hello"
	}
	return fmt.Sprintf("type(0x%04x)", uint16(t))
}
