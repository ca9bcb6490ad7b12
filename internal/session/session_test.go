package session

import (
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/strata-p2p/strata/internal/identity"
	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/internal/transport/quicnet"
	"github.com/strata-p2p/strata/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func hello(role proto.Role) proto.Hello {
	return proto.Hello{MinVersion: proto.MinVersion, MaxVersion: proto.MaxVersion, Role: role, ListenAddrs: []string{"127.0.0.1:1"}, Agent: "test"}
}

type pair struct {
	client transport.Conn
	server *quicnet.Transport
	logs   *observer.ObservedLogs
	served chan error
}

// start runs a server that does the hello and then serves streams by
// answering Ping with Pong; it returns the raw client connection.
func start(t *testing.T, serverHello proto.Hello) *pair {
	t.Helper()
	ida, _ := identity.Generate()
	idb, _ := identity.Generate()
	a, err := quicnet.Listen("127.0.0.1:0", ida, quicnet.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := quicnet.Listen("127.0.0.1:0", idb, quicnet.Config{})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	log := zap.New(core)
	p := &pair{server: b, logs: logs, served: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); a.Close(); b.Close(); <-p.served })
	go func() {
		c, err := b.Accept(ctx)
		if err != nil {
			p.served <- err
			return
		}
		s, err := Server(ctx, c, serverHello)
		if err != nil {
			p.served <- err
			return
		}
		p.served <- s.Serve(ctx, log, 1024, func(ctx context.Context, s *Session, st *Stream, first proto.Message) {
			if ping, ok := first.(*proto.Ping); ok {
				_ = st.Send(&proto.Pong{Nonce: ping.Nonce})
				st.Finish()
				return
			}
			st.Fail(proto.Errorf(proto.CodeProtocol, "unexpected %s", first.Type()))
		})
	}()
	c, err := a.Dial(ctx, b.Addr().String(), b.LocalPeer())
	if err != nil {
		t.Fatal(err)
	}
	p.client = c
	return p
}

func tctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestHelloAndRequest(t *testing.T) {
	p := start(t, hello(proto.RoleSupernode))
	s, err := Client(tctx(t), p.client, hello(proto.RoleLeaf))
	if err != nil {
		t.Fatal(err)
	}
	if s.Remote.Role != proto.RoleSupernode || s.Version != proto.MaxVersion {
		t.Fatalf("remote hello %+v version %d", s.Remote, s.Version)
	}
	reply, err := s.Request(tctx(t), &proto.Ping{Nonce: 9})
	if err != nil {
		t.Fatal(err)
	}
	if pong, ok := reply.(*proto.Pong); !ok || pong.Nonce != 9 {
		t.Fatalf("got %#v, want Pong 9", reply)
	}
}

func TestVersionMismatchClosesConnection(t *testing.T) {
	p := start(t, hello(proto.RoleSupernode))
	h := hello(proto.RoleLeaf)
	h.MinVersion, h.MaxVersion = 99, 100
	_, err := Client(tctx(t), p.client, h)
	if proto.CodeOf(err) != proto.CodeVersionMismatch {
		t.Fatalf("got %v, want version mismatch", err)
	}
	select {
	case <-p.client.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection still open after a version mismatch")
	}
	if err := <-p.served; proto.CodeOf(err) != proto.CodeVersionMismatch {
		t.Fatalf("server side: %v", err)
	}
	p.served <- nil
}

// rawStream writes b on a new stream (closing it when fin), and returns the
// ErrorMsg the server answered with and, when !fin, the error further writes
// get once the server has stopped the stream.
func rawStream(t *testing.T, s *Session, b []byte, fin bool) (*proto.ErrorMsg, error) {
	t.Helper()
	st, err := s.OpenStream(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = st.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = st.Write(b)
	if fin {
		_ = st.Close()
	}
	m, err := proto.NewReader(st, 0).ReadMsg()
	if err != nil {
		t.Fatalf("no error message from the server: %v", err)
	}
	em, _ := m.(*proto.ErrorMsg)
	if _, err := io.ReadAll(st); err != nil {
		t.Fatalf("after the error message: %v, want a clean end", err)
	}
	if fin {
		return em, nil
	}
	for {
		if _, err := st.Write(make([]byte, 1024)); err != nil {
			return em, err
		}
	}
}

func TestBadFramesResetOnlyTheirStream(t *testing.T) {
	p := start(t, hello(proto.RoleSupernode))
	s, err := Client(tctx(t), p.client, hello(proto.RoleLeaf))
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(ty proto.MsgType, n uint32) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(ty))
		return binary.BigEndian.AppendUint32(b, n)
	}
	cases := []struct {
		name string
		in   []byte
		code proto.ErrorCode
		fin  bool
	}{
		{"over the 1 KiB cap", append(hdr(proto.TypePing, 5000), make([]byte, 5000)...), proto.CodeFrameTooLarge, false},
		{"truncated header", []byte{0, 3, 0}, proto.CodeMalformed, true},
		{"length lies", append(hdr(proto.TypePing, 100), 0x91, 0x01), proto.CodeMalformed, true},
		{"garbage body", append(hdr(proto.TypePing, 3), 0xc1, 0xc1, 0xc1), proto.CodeMalformed, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := p.logs.FilterMessageSnippet("bad first frame").Len()
			em, err := rawStream(t, s, c.in, c.fin)
			if em == nil || em.Code != c.code {
				t.Errorf("error message %+v, want code %s", em, c.code)
			}
			if !c.fin && proto.CodeOf(err) != c.code {
				t.Errorf("writes ended with %v, want the stream stopped with code %s", err, c.code)
			}
			if p.logs.FilterMessageSnippet("bad first frame").Len() != before+1 {
				t.Error("no log line for the bad frame")
			}
			// The connection still serves good requests.
			if _, err := s.Request(tctx(t), &proto.Ping{Nonce: 1}); err != nil {
				t.Fatalf("request after a bad frame: %v", err)
			}
		})
	}
}
