package supernode

import (
	"testing"
	"time"

	"github.com/strata-p2p/strata/proto"
)

// Hits for an unreachable leaf (or one whose reachability is not known yet)
// carry the supernode and a ticket that it accepts for that leaf only, until
// it expires; a reachable leaf's hits carry none.
func TestHitTicketsForUnreachableLeaves(t *testing.T) {
	c := NewCore(Config{}, peer(1))
	hidden := peer(100)
	hidden.Reachable = proto.ReachUnreachable
	if _, _, err := c.AttachLeaf(t0, hidden, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddShares(hidden.ID, []proto.FileEntry{entry(1, "hidden song.mp3"), entry(2, "hidden tune.mp3")}); err != nil {
		t.Fatal(err)
	}
	reachable := peer(101)
	reachable.Reachable = proto.ReachPublic
	if _, _, err := c.AttachLeaf(t0, reachable, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddShares(reachable.ID, []proto.FileEntry{entry(3, "open song.mp3")}); err != nil {
		t.Fatal(err)
	}
	open := reachable.ID
	unknown := attach(t, c, 103, entry(4, "unknown song.mp3")) // no dial-back result yet
	asker := attach(t, c, 102)
	hits, _, err := c.StartSearch(t0, asker, proto.Query{ID: proto.QueryID{1}, TTL: 1, Text: "song"})
	if err != nil || len(hits) != 3 {
		t.Fatalf("search: %v %v", hits, err)
	}
	var via *proto.Via
	for _, h := range hits {
		switch h.Holder.ID {
		case hidden.ID:
			via = h.Via
		case open:
			if h.Via != nil {
				t.Errorf("a reachable holder's hit carries a ticket: %+v", h.Via)
			}
		case unknown:
			if h.Via == nil {
				t.Error("the hit of a holder not known to be reachable carries no ticket")
			}
		}
	}
	if via == nil || via.Supernode.ID != pid(1) || len(via.Supernode.Addrs) == 0 {
		t.Fatalf("the unreachable holder's hit: via %+v, want this supernode with its addresses", via)
	}
	req := func(target proto.PeerID, v proto.Via) *proto.ConnectRequest {
		return &proto.ConnectRequest{Target: target, Mode: proto.ConnectPunch, Ticket: v.Ticket, Expires: v.Expires}
	}
	if !c.ValidTicket(t0.Add(time.Minute), req(hidden.ID, *via)) {
		t.Error("the ticket is refused a minute later")
	}
	if c.ValidTicket(t0, req(open, *via)) {
		t.Error("the ticket is accepted for another target")
	}
	if c.ValidTicket(t0.Add(TicketLife+time.Second), req(hidden.ID, *via)) {
		t.Error("the ticket is accepted after it expired")
	}
	longer := *via
	longer.Expires += int64(time.Hour / time.Second)
	if c.ValidTicket(t0, req(hidden.ID, longer)) {
		t.Error("a ticket with its expiry moved is accepted")
	}
	other := NewCore(Config{}, peer(2))
	if other.ValidTicket(t0, req(hidden.ID, *via)) {
		t.Error("another supernode accepts this one's ticket")
	}
}
