package node

import (
	"testing"
	"time"

	"github.com/strata-p2p/strata/internal/hostcache"
	"github.com/strata-p2p/strata/internal/identity"
	"github.com/strata-p2p/strata/proto"
)

// The vias remembered from hits are bounded, expire, and never name this
// node itself.
func TestRememberViaBoundedAndExpiring(t *testing.T) {
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{id: id}
	sn := proto.PeerInfo{ID: proto.PeerID{9}, Addrs: []string{"192.0.2.1:7400"}}
	later := time.Now().Add(time.Minute).Unix()
	holder := func(i int) proto.PeerID { return proto.PeerID{1, byte(i >> 8), byte(i)} }
	for i := range maxHolderVias + 100 {
		n.rememberVia(proto.Hit{Holder: proto.PeerInfo{ID: holder(i)}, Via: &proto.Via{Supernode: sn, Expires: later}})
	}
	if got := len(n.rch.holderVia); got > maxHolderVias {
		t.Fatalf("%d vias remembered, over the bound of %d", got, maxHolderVias)
	}
	last := holder(maxHolderVias + 99)
	if v, ok := n.viaOf(last); !ok || v.Supernode.ID != sn.ID {
		t.Fatalf("the latest via is not remembered: %+v %v", v, ok)
	}
	old := proto.PeerID{2}
	n.rememberVia(proto.Hit{Holder: proto.PeerInfo{ID: old}, Via: &proto.Via{Supernode: sn, Expires: time.Now().Add(-time.Second).Unix()}})
	if _, ok := n.viaOf(old); ok {
		t.Error("an expired via is offered")
	}
	n.rememberVia(proto.Hit{Holder: proto.PeerInfo{ID: proto.PeerID{3}}})
	if _, ok := n.viaOf(proto.PeerID{3}); ok {
		t.Error("a hit without a via left one")
	}
	n.rememberVia(proto.Hit{Holder: proto.PeerInfo{ID: proto.PeerID{4}}, Via: &proto.Via{Supernode: proto.PeerInfo{ID: n.PeerID()}, Expires: later}})
	if _, ok := n.viaOf(proto.PeerID{4}); ok {
		t.Error("a via naming this node itself is kept")
	}
}

// A Via naming a supernode only at a wildcard address (one that has not
// learnt where it is reached) is dialled at the host cache's addresses for
// it; usable addresses are kept as they are.
func TestDialableReplacesWildcardAddresses(t *testing.T) {
	n := &Node{hosts: hostcache.New(hostcache.Config{})}
	sn := proto.PeerID{7}
	n.hosts.Add(time.Now(), proto.PeerInfo{ID: sn, Addrs: []string{"10.77.0.12:7400"}, Role: proto.RoleSupernode})
	got := n.dialable(proto.PeerInfo{ID: sn, Addrs: []string{"[::]:7400", "0.0.0.0:7400"}}).Addrs
	if len(got) != 1 || got[0] != "10.77.0.12:7400" {
		t.Fatalf("dialable addrs %q, want the host cache's [10.77.0.12:7400]", got)
	}
	got = n.dialable(proto.PeerInfo{ID: sn, Addrs: []string{"[::]:7400", "192.0.2.4:7400"}}).Addrs
	if len(got) != 1 || got[0] != "192.0.2.4:7400" {
		t.Fatalf("dialable addrs %q, want the usable one [192.0.2.4:7400]", got)
	}
	if got = n.dialable(proto.PeerInfo{ID: proto.PeerID{8}, Addrs: []string{"[::]:7400"}}).Addrs; len(got) != 0 {
		t.Fatalf("an unknown supernode at a wildcard: %q, want no address", got)
	}
}
