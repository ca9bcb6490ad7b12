package supernode_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/strata-p2p/strata/internal/overlaytest"
	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/internal/transport/memnet"
	"github.com/strata-p2p/strata/proto"
	"github.com/strata-p2p/strata/supernode"
)

func recvNotice(t *testing.T, st *session.Stream) *proto.ConnectNotice {
	t.Helper()
	_ = st.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer func() { _ = st.SetReadDeadline(time.Time{}) }()
	for {
		m, err := st.Recv()
		if err != nil {
			t.Fatalf("leaf session: %v", err)
		}
		if n, ok := m.(*proto.ConnectNotice); ok {
			return n
		}
	}
}

// A push tells the target the asker's ID and the address the asker's
// connection comes from; a relay pipes the two leaves' streams and ends
// the session, counted, when it has carried its byte quota.
func TestPushNoticeAndRelayQuota(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := memnet.NewNetwork(1)
	h := newHost(t, ctx, n, 1, supernode.Config{Reach: supernode.ReachConfig{RelaySessionBytes: 10_000, MaxRelaySessions: 1}})
	a := newLeaf(t, ctx, n, 101, h)
	b := newLeaf(t, ctx, n, 102, h)

	if _, err := a.Sess.Request(ctx, &proto.ConnectRequest{Target: pid(102), Mode: proto.ConnectPush}); err != nil {
		t.Fatal(err)
	}
	notice := recvNotice(t, b.St)
	if notice.From != pid(101) || notice.Mode != proto.ConnectPush || notice.Addr == "" {
		t.Fatalf("push notice %+v, want one from leaf 101 with its address", notice)
	}

	ra, rb := openRelay(t, ctx, a, b, 10_000)
	msg := []byte("ciphertext the relay just carries")
	if _, err := ra.Stream.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(rb.Stream, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("relayed %q %v, want %q", got, err, msg)
	}
	go func() { _, _ = ra.Stream.Write(make([]byte, 20_000)) }()
	_, err := io.Copy(io.Discard, rb.Stream)
	if proto.CodeOf(err) != proto.CodeFull {
		t.Fatalf("over the quota the relay ended with %v, want a full error", err)
	}
	waitFor(t, 5*time.Second, "over-quota refusal not counted", func() bool {
		st := h.RT.ReachStats()
		return st.Refused[supernode.RefusedOverQuota] == 1 && st.RelaySessions == 0 && st.RelayedBytes >= uint64(len(msg))
	})
}

// openRelay has leaf a ask for a relay to leaf b, b join it, and both
// read the supernode's reply (checked for the byte quota).
func openRelay(t *testing.T, ctx context.Context, a, b *overlaytest.Leaf, quota uint64) (*session.Stream, *session.Stream) {
	t.Helper()
	ra, err := a.Sess.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ra.Send(&proto.ConnectRequest{Target: b.Sess.LocalPeer(), Mode: proto.ConnectRelay}); err != nil {
		t.Fatal(err)
	}
	notice := recvNotice(t, b.St)
	rb, err := b.Sess.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rb.Send(&proto.RelayJoin{Session: notice.Session}); err != nil {
		t.Fatal(err)
	}
	for _, st := range []*session.Stream{ra, rb} {
		m, err := st.Recv()
		if r, ok := m.(*proto.ConnectReply); err != nil || !ok || r.MaxBytes != quota {
			t.Fatalf("relay reply %+v %v, want ConnectReply with the %d-byte quota", m, err, quota)
		}
	}
	return ra, rb
}

// The supernode's hourly relay quota ends a running session and refuses
// new ones.
func TestRelayHourQuota(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := memnet.NewNetwork(1)
	h := newHost(t, ctx, n, 1, supernode.Config{Reach: supernode.ReachConfig{RelayHourBytes: 1000}})
	a := newLeaf(t, ctx, n, 101, h)
	b := newLeaf(t, ctx, n, 102, h)
	ra, rb := openRelay(t, ctx, a, b, uint64(supernode.DefaultReachConfig().RelaySessionBytes))
	go func() { _, _ = ra.Stream.Write(make([]byte, 5000)) }()
	if _, err := io.Copy(io.Discard, rb.Stream); proto.CodeOf(err) != proto.CodeFull {
		t.Fatalf("over the hourly quota the relay ended with %v, want a full error", err)
	}
	_, err := a.Sess.Request(ctx, &proto.ConnectRequest{Target: pid(102), Mode: proto.ConnectRelay})
	if proto.CodeOf(err) != proto.CodeFull || !strings.Contains(err.Error(), "this hour") {
		t.Fatalf("relay request after the hourly quota: %v, want a full error about the hour", err)
	}
}
