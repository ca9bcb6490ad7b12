// Package netns builds throwaway Linux network namespaces for tests that
// need real reachability: peers behind a NAT router (iptables MASQUERADE)
// that really drops inbound connections. Everything a Lab makes is removed
// in t.Cleanup; names are unique per run. Tests skip, saying why, when not
// run as root or when ip or iptables is missing.
package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Lab is one test's namespaces.
type Lab struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	links  int
}

// New makes a Lab, or skips the test when namespaces cannot be made here.
func New(t testing.TB) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netns: needs root to create network namespaces (run the test as root)")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("netns: %s is not installed (apt-get install iproute2 iptables)", tool)
		}
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	l := &Lab{t: t, prefix: "st" + hex.EncodeToString(b[:])}
	probe := l.prefix + "-probe"
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		t.Skipf("netns: cannot create a network namespace here: %v: %s", err, out)
	}
	_ = exec.Command("ip", "netns", "del", probe).Run()
	return l
}

func (l *Lab) run(args ...string) {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("netns: %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// NS is one namespace.
type NS struct {
	Name string
	lab  *Lab
}

// NS creates a namespace (its loopback up), removed at cleanup.
func (l *Lab) NS(short string) *NS {
	l.t.Helper()
	ns := &NS{Name: l.prefix + "-" + short, lab: l}
	l.run("ip", "netns", "add", ns.Name)
	l.t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns.Name).Run() })
	ns.Exec("ip", "link", "set", "lo", "up")
	return ns
}

// Exec runs a command inside ns and fails the test if it fails.
func (ns *NS) Exec(args ...string) {
	ns.lab.t.Helper()
	ns.lab.run(append([]string{"ip", "netns", "exec", ns.Name}, args...)...)
}

// Command is a command to run inside ns.
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Link joins a and b with a veth pair: a gets aCIDR (e.g. 10.1.0.1/24), b
// bCIDR. It returns the interface names in a and in b.
func (l *Lab) Link(a *NS, aCIDR string, b *NS, bCIDR string) (string, string) {
	l.t.Helper()
	l.mu.Lock()
	l.links++
	k := l.links
	l.mu.Unlock()
	ia, ib := fmt.Sprintf("v%da", k), fmt.Sprintf("v%db", k)
	l.run("ip", "link", "add", "name", ia, "netns", a.Name, "type", "veth", "peer", "name", ib, "netns", b.Name)
	a.Exec("ip", "addr", "add", aCIDR, "dev", ia)
	b.Exec("ip", "addr", "add", bCIDR, "dev", ib)
	a.Exec("ip", "link", "set", ia, "up")
	b.Exec("ip", "link", "set", ib, "up")
	return ia, ib
}

// Route sets ns's default route.
func (ns *NS) Route(via string) { ns.Exec("ip", "route", "add", "default", "via", via) }

// Forward turns IP forwarding on in ns (a router).
func (ns *NS) Forward() { ns.Exec("sysctl", "-q", "-w", "net.ipv4.ip_forward=1") }

// NAT makes ns a NAT router whose outside is out: it masquerades what
// leaves by out and drops every new connection coming in by out (to the
// router itself or forwarded), so only replies to what the inside sent get
// in. Random picks a random outside port for each destination (a
// "symmetric" NAT, which defeats hole punching); otherwise Linux keeps the
// inside port when it is free.
func (ns *NS) NAT(out string, random bool) {
	ns.Forward()
	masq := []string{"iptables", "-t", "nat", "-A", "POSTROUTING", "-o", out, "-j", "MASQUERADE"}
	if random {
		masq = append(masq, "--random-fully")
	}
	ns.Exec(masq...)
	for _, chain := range []string{"FORWARD", "INPUT"} {
		ns.Exec("iptables", "-A", chain, "-i", out, "-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP")
	}
}

// HTTPClient is an HTTP client whose connections are made inside ns (for a
// control API bound to ns's loopback).
func (ns *NS) HTTPClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: ns.DialContext, DisableKeepAlives: true}}
}

// DialContext dials from inside ns: the socket is made on a thread that has
// entered ns, which then goes back.
func (ns *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialIn(ctx, ns.Name, network, addr)
}
