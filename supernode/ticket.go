package supernode

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/strata-p2p/strata/proto"
)

// TicketLife is how long a hit's ticket (proto.Via) lets a peer that is not
// this supernode's leaf ask it to connect it to the hit's holder.
const TicketLife = 10 * time.Minute

// tickets issues and checks the tickets of hits for unreachable leaves:
// a MAC, under a key that lives as long as the process, of the holder's peer
// ID and the expiry. Nothing is stored per ticket.
type tickets struct {
	key [32]byte
}

func newTickets() tickets {
	var t tickets
	_, _ = rand.Read(t.key[:])
	return t
}

func (t *tickets) mac(target proto.PeerID, expires int64) proto.Ticket {
	h := hmac.New(sha256.New, t.key[:])
	h.Write(target[:])
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(expires))
	h.Write(b[:])
	var out proto.Ticket
	copy(out[:], h.Sum(nil))
	return out
}

// issue returns a ticket for target valid until now+TicketLife.
func (t *tickets) issue(now time.Time, target proto.PeerID) (proto.Ticket, int64) {
	exp := now.Add(TicketLife).Unix()
	return t.mac(target, exp), exp
}

// valid reports whether ticket was issued here for target and has not
// expired (nor claims a life longer than TicketLife).
func (t *tickets) valid(now time.Time, target proto.PeerID, ticket proto.Ticket, expires int64) bool {
	if expires < now.Unix() || expires > now.Add(TicketLife+time.Minute).Unix() {
		return false
	}
	want := t.mac(target, expires)
	return hmac.Equal(want[:], ticket[:])
}

// ValidTicket reports whether a ConnectRequest's ticket for its target was
// issued by this supernode and is still good.
func (c *Core) ValidTicket(now time.Time, m *proto.ConnectRequest) bool {
	return c.tickets.valid(now, m.Target, m.Ticket, m.Expires)
}
