package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/proto"
)

// AttemptTimeout bounds one attempt at one bootstrap server (dial, hello,
// request and reply), so a dead server in the list costs at most this long
// before the next is tried.
const AttemptTimeout = 5 * time.Second

// MaxRegisterBackoff caps how long Register leaves a failing bootstrap
// server alone (the wait starts at one second and doubles per failure).
const MaxRegisterBackoff = 8 * time.Second

// ErrClientClosed is returned by a Client's methods after Close.
var ErrClientClosed = errors.New("bootstrap client closed")

// Client is a node's connection to its bootstrap servers. It keeps one
// session per bootstrap address, so that a supernode's heartbeats do not
// redo the QUIC and hello handshakes every second; a session that fails is
// dropped and the next call dials again. A Client is safe for concurrent
// use. The hello it sends is fixed: a node that changes role (a leaf
// promoted to supernode) makes a new Client with the new role.
type Client struct {
	tr    transport.Transport
	hello proto.Hello
	log   *zap.Logger

	mu       sync.Mutex
	closed   bool
	sessions map[string]*session.Session
	failing  map[string]*failure // addresses whose last attempt failed
}

// failure is the recent history of a bootstrap address that does not answer.
type failure struct {
	count   int
	retryAt time.Time // Register leaves the address alone until then
	err     error
}

// NewClient returns a client that dials from tr and introduces itself with
// hello (a zero version range means proto's). log may be nil.
func NewClient(tr transport.Transport, hello proto.Hello, log *zap.Logger) *Client {
	if hello.MinVersion == 0 && hello.MaxVersion == 0 {
		hello.MinVersion, hello.MaxVersion = proto.MinVersion, proto.MaxVersion
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Client{tr: tr, hello: hello, log: log, sessions: map[string]*session.Session{}, failing: map[string]*failure{}}
}

// Join asks the bootstrap servers, in order, for supernodes to attach to,
// and returns the first answer and the address that gave it. role is the
// role the node runs with (proto.RoleUnknown for auto). Each attempt gets at
// most AttemptTimeout, and at most an equal share of what remains of ctx's
// deadline, so later servers are still tried when an early one is silent.
// When every server fails, the error names each address and what happened.
func Join(ctx context.Context, tr transport.Transport, bootstraps []string, role proto.Role, hello proto.Hello) (*proto.JoinReply, string, error) {
	c := NewClient(tr, hello, nil)
	defer c.Close()
	return c.Join(ctx, bootstraps, role)
}

// Register registers with every bootstrap server once, over connections
// made for the call. Heartbeats should use a Client, which keeps them.
func Register(ctx context.Context, tr transport.Transport, bootstraps []string, hello proto.Hello, addrs []string, load proto.Load) (map[string]*proto.RegisterReply, error) {
	c := NewClient(tr, hello, nil)
	defer c.Close()
	return c.Register(ctx, bootstraps, addrs, load)
}

// Join asks the bootstrap servers, in order, for supernodes to attach to;
// see the package-level Join.
func (c *Client) Join(ctx context.Context, bootstraps []string, role proto.Role) (*proto.JoinReply, string, error) {
	bootstraps = dedupe(bootstraps)
	if len(bootstraps) == 0 {
		return nil, "", errors.New("join: no bootstrap server addresses; set --bootstrap to host:port of at least one")
	}
	var errs []error
	for i, addr := range bootstraps {
		// Share what is left of ctx among the servers not yet tried, so a
		// dead first server cannot use up the caller's whole deadline.
		timeout := AttemptTimeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = min(timeout, time.Until(dl)/time.Duration(len(bootstraps)-i))
		}
		reply, err := c.request(ctx, addr, timeout, &proto.JoinRequest{Role: role})
		if err == nil {
			jr, ok := reply.(*proto.JoinReply)
			if ok {
				return jr, addr, nil
			}
			err = proto.Errorf(proto.CodeProtocol, "answered JoinRequest with %s", reply.Type())
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, "", &allFailedError{op: "join", tried: len(errs), of: len(bootstraps), errs: errs}
}

// Register sends Register (the registration and heartbeat of a supernode)
// to every bootstrap server at once and returns the replies of those that
// answered, by address. The error is non-nil only when none answered; it
// names each address and what happened. Failures of some servers are
// logged when a server starts or stops answering.
//
// The call waits for every server it tries. So that a silent server does
// not hold up every heartbeat, a server that failed is left out for a while
// (1 s, doubling up to MaxRegisterBackoff) as long as some other server is
// not backing off. Pass a ctx deadline well under the expiry the servers
// announce (RegisterReply.ExpiryMillis).
func (c *Client) Register(ctx context.Context, bootstraps []string, addrs []string, load proto.Load) (map[string]*proto.RegisterReply, error) {
	bootstraps = dedupe(bootstraps)
	if len(bootstraps) == 0 {
		return nil, errors.New("register: no bootstrap server addresses; set --bootstrap to host:port of at least one")
	}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		replies = map[string]*proto.RegisterReply{}
		errs    = make([]error, len(bootstraps))
		skip    = c.backingOff(bootstraps)
	)
	for i, addr := range bootstraps {
		if f := skip[addr]; f != nil {
			errs[i] = fmt.Errorf("%s: not retried for %v after %d failures: %w", addr,
				time.Until(f.retryAt).Round(100*time.Millisecond), f.count, f.err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			reply, err := c.request(ctx, addr, AttemptTimeout, &proto.Register{Addrs: addrs, Load: load})
			if err == nil {
				rr, ok := reply.(*proto.RegisterReply)
				if ok {
					mu.Lock()
					replies[addr] = rr
					mu.Unlock()
					return
				}
				err = proto.Errorf(proto.CodeProtocol, "answered Register with %s", reply.Type())
			}
			errs[i] = fmt.Errorf("%s: %w", addr, err)
		}()
	}
	wg.Wait()
	if len(replies) == 0 {
		return nil, &allFailedError{op: "register", tried: len(bootstraps), of: len(bootstraps), errs: errs}
	}
	return replies, nil
}

// request sends msg to the bootstrap server at addr over its cached session
// (dialing one if needed) and returns the reply, giving up after timeout.
func (c *Client) request(ctx context.Context, addr string, timeout time.Duration, msg proto.Message) (proto.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sess, err := c.session(ctx, addr)
	if err == nil {
		var reply proto.Message
		reply, err = sess.Request(ctx, msg)
		if err == nil {
			c.noteResult(addr, nil)
			return reply, nil
		}
		// A coded answer on a live connection (refused, full, ...) leaves
		// the connection usable; anything else drops it.
		var pe *proto.Error
		if sess.Context().Err() != nil || !errors.As(err, &pe) {
			c.drop(addr, sess)
		}
	}
	c.noteResult(addr, err)
	return nil, err
}

// session returns the live session to addr, dialing if there is none.
func (c *Client) session(ctx context.Context, addr string) (*session.Session, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClientClosed
	}
	if s := c.sessions[addr]; s != nil {
		if s.Context().Err() == nil {
			c.mu.Unlock()
			return s, nil
		}
		delete(c.sessions, addr)
	}
	c.mu.Unlock()

	conn, err := c.tr.Dial(ctx, addr, proto.PeerID{})
	if err != nil {
		return nil, err
	}
	sess, err := session.Client(ctx, conn, c.hello)
	if err != nil {
		_ = conn.CloseWithError(proto.CodeOf(err), "hello failed")
		return nil, err
	}
	if sess.Remote.Role != proto.RoleBootstrap {
		_ = conn.CloseWithError(proto.CodeRefused, "not a bootstrap server")
		return nil, proto.Errorf(proto.CodeRefused, "the node at %s is a %s, not a bootstrap server", addr, sess.Remote.Role)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = conn.CloseWithError(proto.CodeOK, "client closed")
		return nil, ErrClientClosed
	}
	if other := c.sessions[addr]; other != nil && other.Context().Err() == nil {
		_ = conn.CloseWithError(proto.CodeOK, "duplicate connection")
		return other, nil
	}
	c.sessions[addr] = sess
	return sess, nil
}

// drop forgets sess (if it is still the cached session for addr) and closes it.
func (c *Client) drop(addr string, sess *session.Session) {
	c.mu.Lock()
	if c.sessions[addr] == sess {
		delete(c.sessions, addr)
	}
	c.mu.Unlock()
	_ = sess.CloseWithError(proto.CodeOK, "reconnecting")
}

// noteResult records an attempt's outcome and logs when a bootstrap server
// starts or stops answering.
func (c *Client) noteResult(addr string, err error) {
	c.mu.Lock()
	f := c.failing[addr]
	if err != nil {
		if f == nil {
			f = &failure{}
			c.failing[addr] = f
		}
		f.count++
		f.err = err
		f.retryAt = time.Now().Add(min(time.Second<<min(f.count-1, 10), MaxRegisterBackoff))
	} else {
		delete(c.failing, addr)
	}
	count := 0
	if f != nil {
		count = f.count
	}
	c.mu.Unlock()
	switch {
	case err != nil && count == 1:
		c.log.Warn("bootstrap server request failed", zap.String("bootstrap", addr), zap.Error(err))
	case err != nil:
		c.log.Debug("bootstrap server request failed again", zap.String("bootstrap", addr), zap.Int("failures", count), zap.Error(err))
	case f != nil:
		c.log.Info("bootstrap server answering again", zap.String("bootstrap", addr))
	}
}

// backingOff returns the addresses Register should leave out now: those
// failing and not due for a retry, unless that is all of them.
func (c *Client) backingOff(addrs []string) map[string]*failure {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	out := map[string]*failure{}
	for _, a := range addrs {
		if f := c.failing[a]; f != nil && now.Before(f.retryAt) {
			cp := *f
			out[a] = &cp
		}
	}
	if len(out) == len(addrs) {
		return nil
	}
	return out
}

// Close closes the cached sessions. Calls in progress fail.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	sessions := c.sessions
	c.sessions = map[string]*session.Session{}
	c.mu.Unlock()
	for _, s := range sessions {
		_ = s.CloseWithError(proto.CodeOK, "leaving")
	}
	return nil
}

func dedupe(addrs []string) []string {
	out := make([]string, 0, len(addrs))
	seen := map[string]bool{}
	for _, a := range addrs {
		if a = strings.TrimSpace(a); a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// allFailedError reports that no bootstrap server answered.
type allFailedError struct {
	op        string
	tried, of int
	errs      []error
}

func (e *allFailedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: no bootstrap server answered", e.op)
	if e.tried < e.of {
		fmt.Fprintf(&b, " (stopped after %d of %d)", e.tried, e.of)
	}
	for i, err := range e.errs {
		if err == nil {
			continue
		}
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	b.WriteString("; check --bootstrap (host:port of a running `strata bootstrap`) and that the servers are reachable")
	return b.String()
}

func (e *allFailedError) Unwrap() []error { return e.errs }

// SendTopology tells the bootstrap server at addr the supernode's
// neighbours and leaves (for its network map). Call it after a Register
// that addr answered.
func (c *Client) SendTopology(ctx context.Context, addr string, m *proto.Topology) error {
	reply, err := c.request(ctx, addr, AttemptTimeout, m)
	if err != nil {
		return err
	}
	if _, ok := reply.(*proto.Pong); !ok {
		return proto.Errorf(proto.CodeProtocol, "answered Topology with %s", reply.Type())
	}
	return nil
}
