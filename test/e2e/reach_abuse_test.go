package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-p2p/strata/internal/identity"
	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/internal/transport/quicnet"
	"github.com/strata-p2p/strata/proto"
	"github.com/strata-p2p/strata/test/internal/proctest"
)

func wantCode(t *testing.T, what string, err error, code proto.ErrorCode) {
	t.Helper()
	var pe *proto.Error
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("%s: got %v, want a %s error", what, err, code)
	}
	t.Logf("%s: refused as it should be: %v", what, err)
}

// TestReachAbuse: a peer that is not the supernode's leaf, a target that is
// not attached, an unknown relay session, relay requests beyond the
// sessions' and the bytes' quotas, and a flood of connect requests are all
// refused with a clear error and counted; a push makes the target dial only
// the peer that asked.
func TestReachAbuse(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several processes")
	}
	bs := start(t, "bootstrap", proctest.BootstrapArgs(t)...)
	sn := start(t, "sn", proctest.NodeArgs(t, bs.Ready.QUIC, "--role", "supernode", "--relay-max-sessions", "1",
		"--relay-session-bytes", "64KB")...)
	victim := start(t, "victim", proctest.NodeArgs(t, bs.Ready.QUIC, "--role", "leaf")...)
	victim.WaitAttached()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := quicnet.Listen("127.0.0.1:0", id, quicnet.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	conn, err := tr.Dial(ctx, sn.Ready.QUIC, sn.Ready.PeerID)
	if err != nil {
		t.Fatal(err)
	}
	s, err := session.Client(ctx, conn, proto.Hello{MinVersion: proto.MinVersion, MaxVersion: proto.MaxVersion,
		Role: proto.RoleLeaf, ListenAddrs: []string{tr.Addr().String()}, Agent: "abuser"})
	if err != nil {
		t.Fatal(err)
	}

	// A stranger may not have the supernode punch (or push, or relay) for it.
	_, err = s.Request(ctx, &proto.ConnectRequest{Target: victim.Ready.PeerID, Mode: proto.ConnectPunch})
	wantCode(t, "punch for a stranger", err, proto.CodeRefused)
	// Nor with a ticket it made up (a real one comes in a search hit).
	_, err = s.Request(ctx, &proto.ConnectRequest{Target: victim.Ready.PeerID, Mode: proto.ConnectPush,
		Ticket: proto.Ticket{1, 2, 3}, Expires: time.Now().Add(time.Minute).Unix()})
	wantCode(t, "push for a stranger with a forged ticket", err, proto.CodeRefused)

	att, err := s.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := att.Send(&proto.Attach{}); err != nil {
		t.Fatal(err)
	}
	if m, err := att.Recv(); err != nil || !m.(*proto.AttachReply).Accepted {
		t.Fatalf("attach: %v %+v", err, m)
	}

	_, err = s.Request(ctx, &proto.ConnectRequest{Target: proto.PeerID{1, 2, 3}, Mode: proto.ConnectRelay})
	wantCode(t, "relay to a peer that is not attached", err, proto.CodeNotFound)
	_, err = s.Request(ctx, &proto.RelayJoin{Session: 12345})
	wantCode(t, "join of an unknown relay session", err, proto.CodeNotFound)

	// A push makes the victim dial the peer that asked, at the address its
	// connection came from, and no one else.
	dialled := make(chan proto.PeerID, 1)
	go func() {
		if c, err := tr.Accept(ctx); err == nil {
			dialled <- c.RemotePeer()
		}
	}()
	if _, err := s.Request(ctx, &proto.ConnectRequest{Target: victim.Ready.PeerID, Mode: proto.ConnectPush}); err != nil {
		t.Fatal(err)
	}
	select {
	case who := <-dialled:
		if who != victim.Ready.PeerID {
			t.Fatalf("pushed connection came from %s, want the victim", who.Short())
		}
	case <-ctx.Done():
		t.Fatal("the push did not make the target dial the asker")
	}

	// One relay session at a time; a session ends at its byte quota.
	relay, err := s.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := relay.Send(&proto.ConnectRequest{Target: victim.Ready.PeerID, Mode: proto.ConnectRelay}); err != nil {
		t.Fatal(err)
	}
	m, err := relay.Recv()
	reply, ok := m.(*proto.ConnectReply)
	if err != nil || !ok || reply.MaxBytes != 64_000 {
		t.Fatalf("relay reply: %v %+v, want a ConnectReply with the 64KB quota", err, m)
	}
	_, err = s.Request(ctx, &proto.ConnectRequest{Target: victim.Ready.PeerID, Mode: proto.ConnectRelay})
	wantCode(t, "second relay session beyond --relay-max-sessions 1", err, proto.CodeFull)
	pkt := []byte{1000 >> 8, 1000 & 0xff} // a 1000-byte packet
	pkt = append(pkt, make([]byte, 1000)...)
	var werr error
	for i := 0; i < 200 && werr == nil; i++ { // 200 KB: far over the quota
		_, werr = relay.Stream.Write(pkt)
	}
	buf := make([]byte, 4096)
	var rerr error
	for rerr == nil {
		_, rerr = relay.Stream.Read(buf)
	}
	wantCode(t, "relay session over its byte quota", rerr, proto.CodeFull)

	// A flood of requests is cut off by the per-leaf rate limit.
	var limited error
	for i := 0; i < 20 && limited == nil; i++ {
		_, err := s.Request(ctx, &proto.ConnectRequest{Target: victim.Ready.PeerID, Mode: proto.ConnectPush})
		if proto.CodeOf(err) == proto.CodeRateLimited {
			limited = err
		}
	}
	wantCode(t, "connect request flood", limited, proto.CodeRateLimited)

	for _, reason := range []string{"stranger", "target_not_attached", "unknown_relay_session", "relay_full", "relay_over_quota", "rate_limited"} {
		if v := metric(t, sn, `strata_reach_refused_total{reason="`+reason+`"}`); v < 1 {
			t.Errorf("refusal %s counted %v times in /metrics, want at least 1", reason, v)
		}
	}
	if out, err := proctest.CLI(t, "status", "--api", sn.Ready.API); err != nil || !strings.Contains(out, "relay: 0/1 sessions") ||
		!strings.Contains(out, "relay_full 1") {
		t.Errorf("strata status does not show the relay's sessions and refusals: %v\n%s", err, out)
	}
	// The victim dialled back at most once a second however often it was asked.
	if v := metric(t, victim, `strata_reach_refused_total{reason="dial_back_rate_limited"}`); v < 1 {
		t.Errorf("the victim's dial-back rate limit counted %v, want at least 1", v)
	}
}
