package transfer

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// delayLine is a long, narrow path on loopback, for benchmarks that need a
// round trip longer than loopback's (this machine's kernel has no netem).
// It forwards UDP datagrams between target and the address that last sent
// to it (each quic-go dial of the raw benchmark is a new socket). Each
// direction is a lane: a datagram leaves the lane's bottleneck no faster
// than rate bytes/s, then takes delay to arrive; one that finds limit
// bytes already queued at the bottleneck is dropped, as a router with a
// buffer of that size would.
type delayLine struct {
	front    *net.UDPConn // clients send here
	back     *net.UDPConn // towards target
	up, down *lane
	upSent   sync.WaitGroup // the up lane's sender
	wg       sync.WaitGroup
}

type datagram struct {
	b  []byte
	at time.Time // when it arrives at the far end
}

type lane struct {
	delay time.Duration
	rate  float64 // bytes per second
	limit time.Duration
	free  time.Time // when the bottleneck has sent everything queued so far
	out   chan datagram
	drops atomic.Int64
}

func newDelayLine(tb testing.TB, target string, delay time.Duration, rate float64, limit int) *delayLine {
	tb.Helper()
	dst, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		tb.Fatal(err)
	}
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	back, err := net.DialUDP("udp", nil, dst)
	if err != nil {
		_ = front.Close()
		tb.Fatal(err)
	}
	for _, c := range []*net.UDPConn{front, back} {
		_ = c.SetReadBuffer(8 << 20)
		_ = c.SetWriteBuffer(8 << 20)
	}
	l := &delayLine{front: front, back: back}
	newLane := func() *lane {
		return &lane{delay: delay, rate: rate, limit: time.Duration(float64(limit) / rate * float64(time.Second)),
			out: make(chan datagram, 1<<16)}
	}
	up, down := newLane(), newLane()
	l.up, l.down = up, down
	var client struct {
		sync.Mutex
		addr *net.UDPAddr
	}
	l.wg.Add(3)
	l.upSent.Add(1)
	go func() { // client to target
		defer l.wg.Done()
		defer close(up.out)
		buf := make([]byte, 64<<10)
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			client.Lock()
			client.addr = from
			client.Unlock()
			up.push(buf[:n])
		}
	}()
	go func() { // target to client
		defer l.wg.Done()
		defer close(down.out)
		buf := make([]byte, 64<<10)
		for {
			n, err := back.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // ICMP unreachable from a closed target: keep forwarding
			}
			down.push(buf[:n])
		}
	}()
	go func() {
		defer l.upSent.Done()
		up.run(func(b []byte) { _, _ = back.Write(b) })
	}()
	go func() {
		defer l.wg.Done()
		down.run(func(b []byte) {
			client.Lock()
			to := client.addr
			client.Unlock()
			_, _ = front.WriteToUDP(b, to)
		})
	}()
	tb.Cleanup(l.close)
	return l
}

// push queues a copy of b at the lane's bottleneck, or drops it.
func (n *lane) push(b []byte) {
	now := time.Now()
	start := n.free
	if start.Before(now) {
		start = now
	}
	if start.Sub(now) > n.limit {
		n.drops.Add(1)
		return
	}
	free := start.Add(time.Duration(float64(len(b)) / n.rate * float64(time.Second)))
	select {
	case n.out <- datagram{b: append([]byte(nil), b...), at: free.Add(n.delay)}:
		n.free = free
	default: // a datagram dropped here takes no time at the bottleneck
		n.drops.Add(1)
	}
}

// run sends each datagram when it is due, in order (every datagram of a
// lane takes the same delay, so order of arrival is order of sending).
func (n *lane) run(send func([]byte)) {
	for d := range n.out {
		if w := time.Until(d.at); w > 0 {
			time.Sleep(w)
		}
		send(d.b)
	}
}

// drops is how many datagrams the line has dropped, both ways.
func (l *delayLine) drops() int64 { return l.up.drops.Load() + l.down.drops.Load() }

// Addr is where clients send to reach target through the line.
func (l *delayLine) Addr() string { return l.front.LocalAddr().String() }

// close stops taking datagrams, lets the ones on their way to target
// arrive (a client's last word, such as QUIC's CONNECTION_CLOSE, must
// reach the server, or the server waits out its idle timeout), then
// closes the line.
func (l *delayLine) close() {
	_ = l.front.Close()
	l.upSent.Wait()
	_ = l.back.Close()
	l.wg.Wait()
}

// TestDelayLine: the line holds each datagram at least its delay each
// way, forwards replies to the sender, and keeps order.
func TestDelayLine(t *testing.T) {
	echo, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = echo.WriteToUDP(buf[:n], from)
		}
	}()
	const delay = 30 * time.Millisecond
	line := newDelayLine(t, echo.LocalAddr().String(), delay, 10e6, 1<<20)
	c, err := net.Dial("udp", line.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	for i := range 5 {
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	for i := range 5 {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if n != 1 || buf[0] != byte(i) {
			t.Fatalf("reply %d: got % x", i, buf[:n])
		}
		if el := time.Since(start); el < 2*delay {
			t.Fatalf("reply %d after %v: the line must hold each datagram %v each way", i, el, delay)
		}
	}
}

// TestDelayLineDrops: a burst larger than the line's buffer loses what
// does not fit, and everything it kept arrives.
func TestDelayLineDrops(t *testing.T) {
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	// 100 kB/s with a 10 kB buffer: of 50 datagrams of 1000 bytes sent at
	// once, about 11 fit.
	line := newDelayLine(t, sink.LocalAddr().String(), time.Millisecond, 1e5, 10_000)
	c, err := net.Dial("udp", line.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const sent = 50
	for range sent {
		if _, err := c.Write(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	buf := make([]byte, 2048)
	for end := time.Now().Add(10 * time.Second); got+int(line.drops()) < sent && time.Now().Before(end); {
		_ = sink.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, _, err := sink.ReadFromUDP(buf); err == nil {
			got++
		}
	}
	drops := int(line.drops())
	if drops == 0 || got == 0 || got+drops != sent {
		t.Fatalf("sent %d: %d arrived, %d dropped; want some of each, adding up", sent, got, drops)
	}
}
