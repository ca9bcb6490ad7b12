package bootstrap

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/strata-p2p/strata/internal/identity"
	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/internal/transport/memnet"
	"github.com/strata-p2p/strata/internal/transport/quicnet"
	"github.com/strata-p2p/strata/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// running is a server serving one transport.
type running struct {
	srv  *Server
	tr   transport.Transport
	addr string
	done chan error
	once sync.Once
}

// stop closes the server and its transport and checks Serve's result.
func (r *running) stop(t *testing.T) {
	r.once.Do(func() {
		if err := r.srv.Close(); err != nil {
			t.Error(err)
		}
		if err := <-r.done; err != nil {
			t.Errorf("Serve returned %v after Close, want nil", err)
		}
		_ = r.tr.Close()
	})
}

func serve(t *testing.T, srv *Server, tr transport.Transport) *running {
	t.Helper()
	r := &running{srv: srv, tr: tr, addr: tr.Addr().String(), done: make(chan error, 1)}
	go func() { r.done <- srv.Serve(context.Background(), tr) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// startMem runs a bootstrap server on nw at addr ("" for any).
func startMem(t *testing.T, nw *memnet.Network, addr string, cfg Config) *running {
	t.Helper()
	tr, err := nw.Listen(addr, pid(1000))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = zaptest.NewLogger(t)
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(1, 1))
	}
	srv, err := New(cfg, pid(1000))
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, srv, tr)
}

func helloAs(role proto.Role, addrs ...string) proto.Hello {
	return proto.Hello{Role: role, ListenAddrs: addrs, Agent: "test"}
}

// memClient is a node on nw with a bootstrap client.
func memClient(t *testing.T, nw *memnet.Network, n int, role proto.Role) (*Client, *memnet.Transport) {
	t.Helper()
	tr, err := nw.Listen("", pid(n))
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(tr, helloAs(role, tr.Addr().String()), zaptest.NewLogger(t))
	t.Cleanup(func() { c.Close(); tr.Close() })
	return c, tr
}

func TestServeJoinAndRegister(t *testing.T) {
	ctx := testCtx(t)
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "", Config{})

	sn, snTr := memClient(t, nw, 1, proto.RoleSupernode)
	replies, err := sn.Register(ctx, []string{b.addr}, []string{"0.0.0.0:7400"}, proto.Load{Leaves: 2, Capacity: 10, IndexFiles: 30, Neighbours: 1})
	if err != nil {
		t.Fatal(err)
	}
	rr := replies[b.addr]
	if rr == nil || rr.HeartbeatMillis != 1000 || rr.ExpiryMillis != 3500 {
		t.Fatalf("register replies %+v", replies)
	}

	leaf, leafTr := memClient(t, nw, 2, proto.RoleLeaf)
	jr, used, err := leaf.Join(ctx, []string{b.addr}, proto.RoleLeaf)
	if err != nil {
		t.Fatal(err)
	}
	if used != b.addr || jr.Become != proto.RoleUnknown || jr.ObservedAddr != leafTr.Addr().String() {
		t.Fatalf("join via %s: %+v", used, jr)
	}
	// 0.0.0.0 was rewritten to the host the supernode was seen at ("mem").
	if len(jr.Supernodes) != 1 || jr.Supernodes[0].ID != snTr.LocalPeer() || !slices.Equal(jr.Supernodes[0].Addrs, []string{"mem:7400"}) {
		t.Fatalf("join listed %+v", jr.Supernodes)
	}

	st := b.srv.Status()
	if st.PeerID != pid(1000) || st.Role != proto.RoleBootstrap || st.Totals.Supernodes != 1 || st.Totals.IndexFiles != 30 {
		t.Fatalf("status %+v", st)
	}

	// Heartbeats reuse the connection: the supernode's Register without
	// addresses falls back to its hello's listen addresses.
	for range 3 {
		if _, err := sn.Register(ctx, []string{b.addr}, nil, proto.Load{Capacity: 10}); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.srv.Status().Supernodes[0].Addrs; !slices.Equal(got, []string{snTr.Addr().String()}) {
		t.Fatalf("addrs after a Register without addresses = %v, want the hello's", got)
	}
	sn.mu.Lock()
	cached := len(sn.sessions)
	sn.mu.Unlock()
	if cached != 1 {
		t.Fatalf("client caches %d sessions, want 1", cached)
	}
}

func TestRegisterRefusedFromLeaf(t *testing.T) {
	ctx := testCtx(t)
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "", Config{})
	leaf, _ := memClient(t, nw, 2, proto.RoleLeaf)
	_, err := leaf.Register(ctx, []string{b.addr}, nil, proto.Load{Capacity: 10})
	if proto.CodeOf(err) != proto.CodeRefused || !strings.Contains(err.Error(), "role leaf") {
		t.Fatalf("Register from a leaf session: %v, want code refused naming the role", err)
	}
	if n := b.srv.Status().Totals.Supernodes; n != 0 {
		t.Fatalf("%d supernodes registered after a refused Register", n)
	}
	// The refusal was an answer: the connection is kept and still works.
	if _, _, err := leaf.Join(ctx, []string{b.addr}, proto.RoleLeaf); err != nil {
		t.Fatal(err)
	}
	leaf.mu.Lock()
	cached := len(leaf.sessions)
	leaf.mu.Unlock()
	if cached != 1 {
		t.Fatalf("client caches %d sessions after a refusal, want 1", cached)
	}
}

// rawSession dials addr from a new memnet node and runs the hello.
func rawSession(t *testing.T, ctx context.Context, nw *memnet.Network, n int, addr string, role proto.Role) *session.Session {
	t.Helper()
	tr, err := nw.Listen("", pid(n))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	c, err := tr.Dial(ctx, addr, pid(1000))
	if err != nil {
		t.Fatal(err)
	}
	h := helloAs(role)
	h.MinVersion, h.MaxVersion = proto.MinVersion, proto.MaxVersion
	s, err := session.Client(ctx, c, h)
	if err != nil {
		t.Fatal(err)
	}
	if s.Remote.Role != proto.RoleBootstrap {
		t.Fatalf("server hello role %s, want bootstrap", s.Remote.Role)
	}
	return s
}

func TestUnknownMessageFailsOnlyItsStream(t *testing.T) {
	ctx := testCtx(t)
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "", Config{})
	s := rawSession(t, ctx, nw, 2, b.addr, proto.RoleLeaf)

	for _, m := range []proto.Message{&proto.Ping{Nonce: 1}, &proto.Attach{Files: 3}, &proto.JoinReply{}} {
		_, err := s.Request(ctx, m)
		if proto.CodeOf(err) != proto.CodeProtocol {
			t.Fatalf("%s to a bootstrap server: %v, want code protocol", m.Type(), err)
		}
	}
	_, err := s.Request(ctx, &proto.JoinRequest{Role: proto.RoleBootstrap})
	if proto.CodeOf(err) != proto.CodeBadRequest {
		t.Fatalf("join as bootstrap: %v, want bad request", err)
	}
	reply, err := s.Request(ctx, &proto.JoinRequest{Role: proto.RoleLeaf})
	if err != nil {
		t.Fatalf("join on the same connection after the failures: %v", err)
	}
	if _, ok := reply.(*proto.JoinReply); !ok {
		t.Fatalf("join answered with %s", reply.Type())
	}
}

func TestClientFailover(t *testing.T) {
	ctx := testCtx(t)
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "", Config{})
	leaf, _ := memClient(t, nw, 2, proto.RoleUnknown)

	_, used, err := leaf.Join(ctx, []string{"mem:dead", b.addr}, proto.RoleUnknown)
	if err != nil || used != b.addr {
		t.Fatalf("join with the first bootstrap dead: used %q, err %v; want %s", used, err, b.addr)
	}

	_, _, err = leaf.Join(ctx, []string{"mem:dead1", "mem:dead2"}, proto.RoleLeaf)
	if err == nil {
		t.Fatal("join with every bootstrap dead succeeded")
	}
	for _, want := range []string{"mem:dead1", "mem:dead2", "--bootstrap", "no answer"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if proto.CodeOf(err) != proto.CodeTimeout {
		t.Errorf("errors.As finds code %s, want the attempts' timeout", proto.CodeOf(err))
	}
	if _, _, err := leaf.Join(ctx, nil, proto.RoleLeaf); err == nil || !strings.Contains(err.Error(), "--bootstrap") {
		t.Fatalf("join with no addresses: %v", err)
	}

	// The package-level helpers make and close their own connections.
	tr, err := nw.Listen("", pid(3))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, _, err := Join(ctx, tr, []string{"mem:dead", b.addr}, proto.RoleLeaf, helloAs(proto.RoleLeaf)); err != nil {
		t.Fatal(err)
	}
}

func TestClientRefusesNonBootstrap(t *testing.T) {
	ctx := testCtx(t)
	nw := memnet.NewNetwork(1)
	tr, err := nw.Listen("mem:node", pid(50))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := tr.Accept(ctx)
		if err != nil {
			return
		}
		h := helloAs(proto.RoleSupernode)
		h.MinVersion, h.MaxVersion = proto.MinVersion, proto.MaxVersion
		_, _ = session.Server(ctx, c, h)
	}()
	defer func() { tr.Close(); <-done }()
	leaf, _ := memClient(t, nw, 2, proto.RoleLeaf)
	_, _, err = leaf.Join(ctx, []string{"mem:node"}, proto.RoleLeaf)
	if err == nil || !strings.Contains(err.Error(), "is a supernode, not a bootstrap server") {
		t.Fatalf("join at a supernode's address: %v", err)
	}
}

func TestRegisterWithEveryBootstrap(t *testing.T) {
	ctx := testCtx(t)
	nw := memnet.NewNetwork(1)
	b1 := startMem(t, nw, "", Config{})
	b2 := startMem(t, nw, "", Config{})
	sn, _ := memClient(t, nw, 1, proto.RoleSupernode)

	replies, err := sn.Register(ctx, []string{b1.addr, b2.addr, b1.addr}, nil, proto.Load{Capacity: 5})
	if err != nil || len(replies) != 2 || replies[b1.addr] == nil || replies[b2.addr] == nil {
		t.Fatalf("register with two bootstraps: %v, %v", replies, err)
	}
	for _, b := range []*running{b1, b2} {
		if n := b.srv.Status().Totals.Supernodes; n != 1 {
			t.Fatalf("bootstrap %s has %d supernodes, want 1", b.addr, n)
		}
	}
	replies, err = sn.Register(ctx, []string{"mem:dead", b2.addr}, nil, proto.Load{Capacity: 5})
	if err != nil || len(replies) != 1 || replies[b2.addr] == nil {
		t.Fatalf("register with one dead bootstrap: %v, %v; want b2's answer and no error", replies, err)
	}
	_, err = sn.Register(ctx, []string{"mem:dead", "mem:dead2"}, nil, proto.Load{})
	if err == nil || !strings.Contains(err.Error(), "mem:dead2") || !strings.Contains(err.Error(), "--bootstrap") {
		t.Fatalf("register with every bootstrap dead: %v", err)
	}
}

func TestRestartRebuildsFromHeartbeats(t *testing.T) {
	ctx := testCtx(t)
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "mem:boot", Config{})
	var sns []*Client
	for i := 1; i <= 3; i++ {
		c, _ := memClient(t, nw, i, proto.RoleSupernode)
		sns = append(sns, c)
	}
	heartbeat := func() {
		t.Helper()
		for _, c := range sns {
			if _, err := c.Register(ctx, []string{"mem:boot"}, nil, proto.Load{Capacity: 10}); err != nil {
				t.Fatal(err)
			}
		}
	}
	heartbeat()
	if n := b.srv.Status().Totals.Supernodes; n != 3 {
		t.Fatalf("%d supernodes before the restart, want 3", n)
	}

	b.stop(t)
	b = startMem(t, nw, "mem:boot", Config{})
	if n := b.srv.Status().Totals.Supernodes; n != 0 {
		t.Fatalf("restarted server starts with %d supernodes, want 0 (soft state)", n)
	}
	// The clients notice their cached connections died and redial.
	heartbeat()
	if n := b.srv.Status().Totals.Supernodes; n != 3 {
		t.Fatalf("%d supernodes after one round of heartbeats, want 3", n)
	}
	leaf, _ := memClient(t, nw, 10, proto.RoleUnknown)
	jr, _, err := leaf.Join(ctx, []string{"mem:boot"}, proto.RoleUnknown)
	if err != nil || len(jr.Supernodes) != 3 || jr.Become != proto.RoleUnknown {
		t.Fatalf("join after the restart: %+v, %v", jr, err)
	}
}

func TestServerExpiryWithFakeClock(t *testing.T) {
	ctx := testCtx(t)
	clock := &fakeClock{now: t0}
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "", Config{Now: clock.Now})
	sn, _ := memClient(t, nw, 1, proto.RoleSupernode)
	if _, err := sn.Register(ctx, []string{b.addr}, nil, proto.Load{Capacity: 10}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Second)
	if st := b.srv.Status(); len(st.Supernodes) != 1 || st.Supernodes[0].LastSeenMillis != 3000 {
		t.Fatalf("at 3s: %+v", st.Supernodes)
	}
	clock.Advance(time.Second)
	if n := b.srv.Status().Totals.Supernodes; n != 0 {
		t.Fatalf("at 4s without heartbeats: %d supernodes, want 0", n)
	}
	leaf, _ := memClient(t, nw, 2, proto.RoleUnknown)
	jr, _, err := leaf.Join(ctx, []string{b.addr}, proto.RoleUnknown)
	// An auto node is not promoted at join: the promotion planner asks the
	// best measured candidates to step up when they check in.
	if err != nil || jr.Become != proto.RoleUnknown || len(jr.Supernodes) != 0 {
		t.Fatalf("auto join with the only supernode expired: %+v, %v; want no supernode and no promotion", jr, err)
	}
}

func TestCloseWithSilentClients(t *testing.T) {
	ctx := testCtx(t)
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "", Config{})
	s := rawSession(t, ctx, nw, 2, b.addr, proto.RoleLeaf)
	// A stream that never sends its request, and a connection that never
	// says hello.
	if _, err := s.OpenStream(ctx); err != nil {
		t.Fatal(err)
	}
	tr, _ := nw.Listen("", pid(3))
	defer tr.Close()
	if _, err := tr.Dial(ctx, b.addr, proto.PeerID{}); err != nil {
		t.Fatal(err)
	}
	// The server still answers others.
	leaf, _ := memClient(t, nw, 4, proto.RoleLeaf)
	if _, _, err := leaf.Join(ctx, []string{b.addr}, proto.RoleLeaf); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { b.stop(t); close(closed) }()
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("Close did not return with a silent client connected")
	}
	select {
	case <-s.Context().Done():
	case <-ctx.Done():
		t.Fatal("client connection still open after Close")
	}
	if err := b.srv.Serve(ctx, tr); !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve after Close: %v, want ErrClosed", err)
	}
}

func TestServeOverQUIC(t *testing.T) {
	ctx := testCtx(t)
	listen := func() *quicnet.Transport {
		id, err := identity.Generate()
		if err != nil {
			t.Fatal(err)
		}
		tr, err := quicnet.Listen("127.0.0.1:0", id, quicnet.Config{Logger: zaptest.NewLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	btr := listen()
	srv, err := New(Config{Logger: zaptest.NewLogger(t)}, btr.LocalPeer())
	if err != nil {
		t.Fatal(err)
	}
	b := serve(t, srv, btr)

	snTr := listen()
	sn := NewClient(snTr, helloAs(proto.RoleSupernode), zaptest.NewLogger(t))
	defer sn.Close()
	_, port, _ := strings.Cut(snTr.Addr().String(), ":")
	if _, err := sn.Register(ctx, []string{b.addr}, []string{"0.0.0.0:" + port}, proto.Load{Capacity: 10}); err != nil {
		t.Fatal(err)
	}

	leafTr := listen()
	leaf := NewClient(leafTr, helloAs(proto.RoleUnknown), zaptest.NewLogger(t))
	defer leaf.Close()
	jr, used, err := leaf.Join(ctx, []string{b.addr}, proto.RoleUnknown)
	if err != nil {
		t.Fatal(err)
	}
	if used != b.addr || jr.ObservedAddr != leafTr.Addr().String() || jr.Become != proto.RoleUnknown {
		t.Fatalf("join over QUIC via %s: %+v (leaf is %s)", used, jr, leafTr.Addr())
	}
	if len(jr.Supernodes) != 1 || jr.Supernodes[0].ID != snTr.LocalPeer() || !slices.Equal(jr.Supernodes[0].Addrs, []string{snTr.Addr().String()}) {
		t.Fatalf("join over QUIC listed %+v; want the supernode at %s", jr.Supernodes, snTr.Addr())
	}
	// A leaf session may not register.
	if _, err := leaf.Register(ctx, []string{b.addr}, nil, proto.Load{}); proto.CodeOf(err) != proto.CodeRefused {
		t.Fatalf("Register from a leaf over QUIC: %v", err)
	}
}

func TestHTTPStatus(t *testing.T) {
	ctx := testCtx(t)
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "", Config{})
	sn, snTr := memClient(t, nw, 1, proto.RoleSupernode)
	if _, err := sn.Register(ctx, []string{b.addr}, nil, proto.Load{Leaves: 3, Capacity: 10, IndexFiles: 40, Neighbours: 2}); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(b.srv.Handler())
	defer hs.Close()

	resp, err := http.Get(hs.URL + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/status: %s %s", resp.Status, body)
	}
	var got struct {
		PeerID     string `json:"peer_id"`
		Role       string `json:"role"`
		Supernodes []struct {
			PeerID     string         `json:"peer_id"`
			Addrs      []string       `json:"addrs"`
			Load       map[string]int `json:"load"`
			LastSeenMS *int64         `json:"last_seen_ms"`
		} `json:"supernodes"`
		Totals map[string]float64 `json:"totals"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if got.PeerID != pid(1000).String() || got.Role != "bootstrap" || len(got.Supernodes) != 1 {
		t.Fatalf("status %s", body)
	}
	s := got.Supernodes[0]
	wantLoad := map[string]int{"leaves": 3, "capacity": 10, "index_files": 40, "neighbours": 2}
	if s.PeerID != snTr.LocalPeer().String() || len(s.Addrs) != 1 || s.LastSeenMS == nil || !maps.Equal(s.Load, wantLoad) {
		t.Fatalf("supernode in status: %s", body)
	}
	for k, v := range map[string]float64{"supernodes": 1, "leaves": 3, "capacity": 10, "index_files": 40, "leaves_per_supernode": 3} {
		if got.Totals[k] != v {
			t.Errorf("totals.%s = %v, want %v (%s)", k, got.Totals[k], v, body)
		}
	}

	for _, tc := range []struct {
		method, path string
		code         int
	}{{http.MethodPost, "/v1/status", http.StatusMethodNotAllowed}, {http.MethodDelete, "/v1/status", http.StatusMethodNotAllowed},
		{http.MethodGet, "/v1/nope", http.StatusNotFound}} {
		req, _ := http.NewRequest(tc.method, hs.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e map[string]string
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.code || err != nil || e["error"] == "" {
			t.Fatalf("%s %s: %s, body %v (%v); want %d with a JSON error", tc.method, tc.path, resp.Status, e, err, tc.code)
		}
		if tc.code == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "" {
			t.Errorf("405 without an Allow header")
		}
	}
}

func TestMaxConns(t *testing.T) {
	ctx := testCtx(t)
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "", Config{MaxConns: 1})
	tr, _ := nw.Listen("", pid(3))
	defer tr.Close()
	silent, err := tr.Dial(ctx, b.addr, proto.PeerID{})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := memClient(t, nw, 4, proto.RoleLeaf)
	_, _, err = leaf.Join(ctx, []string{b.addr}, proto.RoleLeaf)
	if proto.CodeOf(err) != proto.CodeFull || !strings.Contains(err.Error(), "too many connections") {
		t.Fatalf("join while the one connection slot is taken: %v, want code full", err)
	}
	// The slot comes back when the silent connection goes.
	_ = silent.CloseWithError(proto.CodeOK, "bye")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, err = leaf.Join(ctx, []string{b.addr}, proto.RoleLeaf)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not returned after the silent connection closed: %v", err)
		}
		runtime.Gosched()
	}
}

func TestClientFailoverPastSilentBootstrap(t *testing.T) {
	ctx := testCtx(t)
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "", Config{})
	// A bootstrap that takes the connection but never answers the hello,
	// as a wedged server would.
	hole, err := nw.Listen("mem:hole", pid(500))
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	leaf, _ := memClient(t, nw, 2, proto.RoleLeaf)
	jctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, used, err := leaf.Join(jctx, []string{"mem:hole", b.addr}, proto.RoleLeaf)
	if err != nil || used != b.addr {
		t.Fatalf("join within 2s with a silent first bootstrap: used %q, err %v; want the second, %s", used, err, b.addr)
	}
}

func TestRegisterBacksOffSilentBootstrap(t *testing.T) {
	ctx := testCtx(t)
	nw := memnet.NewNetwork(1)
	b := startMem(t, nw, "", Config{})
	hole, err := nw.Listen("mem:hole", pid(500))
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	sn, _ := memClient(t, nw, 1, proto.RoleSupernode)
	for i := range 3 {
		rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		replies, err := sn.Register(rctx, []string{"mem:hole", b.addr}, nil, proto.Load{Capacity: 1})
		cancel()
		if err != nil || len(replies) != 1 {
			t.Fatalf("heartbeat %d: %v, %v; want b's answer", i, replies, err)
		}
	}
	// The silent server was dialed once; the next heartbeats left it out.
	dials := 0
	for {
		actx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err := hole.Accept(actx)
		cancel()
		if err != nil {
			break
		}
		dials++
	}
	if dials != 1 {
		t.Fatalf("silent bootstrap dialed %d times in 3 quick heartbeats, want 1 (backoff)", dials)
	}
	// With every server backing off, Register tries them all anyway.
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := sn.Register(rctx, []string{"mem:hole"}, nil, proto.Load{}); err == nil || !strings.Contains(err.Error(), "mem:hole") {
		t.Fatalf("register with only the silent server: %v", err)
	}
	actx, cancel2 := context.WithTimeout(ctx, time.Second)
	defer cancel2()
	if _, err := hole.Accept(actx); err != nil {
		t.Fatal("a lone failing bootstrap was not retried")
	}
}
