package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-p2p/strata/internal/netns"
	"github.com/strata-p2p/strata/internal/transfer"
	"github.com/strata-p2p/strata/proto"
	"github.com/strata-p2p/strata/test/internal/proctest"
)

// reachNet is a small internet in network namespaces: "pub" holds the
// bootstrap server, the supernode and a public peer; three NAT routers
// (iptables MASQUERADE, new inbound connections dropped) each hide one
// private peer namespace. nat3 picks a random outside port per destination
// (a symmetric NAT), which defeats hole punching.
type reachNet struct {
	pub                 *netns.NS
	priv1, priv2, priv3 *netns.NS
}

func newReachNet(t testing.TB) *reachNet {
	lab := netns.New(t)
	r := &reachNet{pub: lab.NS("pub")}
	r.pub.Forward()
	privs := []**netns.NS{&r.priv1, &r.priv2, &r.priv3}
	for i := range 3 {
		nat := lab.NS(fmt.Sprintf("nat%d", i+1))
		priv := lab.NS(fmt.Sprintf("priv%d", i+1))
		_, out := lab.Link(r.pub, fmt.Sprintf("10.99.%d.1/24", i+1), nat, fmt.Sprintf("10.99.%d.2/24", i+1))
		lab.Link(nat, fmt.Sprintf("192.168.%d.1/24", i+1), priv, fmt.Sprintf("192.168.%d.2/24", i+1))
		nat.Route(fmt.Sprintf("10.99.%d.1", i+1))
		priv.Route(fmt.Sprintf("192.168.%d.1", i+1))
		nat.NAT(out, i == 2)
		*privs[i] = priv
	}
	return r
}

// reachNode is the arguments of a leaf in a namespace (the control API on
// that namespace's loopback).
func reachNode(t testing.TB, bs, listen string, extra ...string) []string {
	args := []string{"node", "--bootstrap", bs, "--listen", listen, "--api", "127.0.0.1:0", "--role", "leaf",
		"--state-dir", t.TempDir(), "--downloads", t.TempDir(), "--rescan", "200ms", "--log-format", "json"}
	return append(args, extra...)
}

// waitReach waits until p's dial-backs have found r.
func (p *proc) waitReach(r proto.Reachability) {
	p.T.Helper()
	proctest.Eventually(p.T, 20*time.Second, p.Name+" not told it is "+r.String(), func() bool {
		return p.Status().Reach.Reachable == r
	})
}

// getIn runs `strata get --json` for cid on p (inside its namespace) and
// returns the final status, checked against want.
func getIn(t testing.TB, p *proc, cid proto.ContentID, want [32]byte) transfer.DownloadStatus {
	t.Helper()
	out, err := proctest.CLIIn(t, p.NS, "get", "--api", p.Ready.API, "--json", cid.String())
	if err != nil {
		t.Fatalf("strata get on %s: %v\n%s", p.Name, err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var final transfer.DownloadStatus
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &final); err != nil {
		t.Fatalf("last line of strata get --json: %v: %q", err, lines[len(lines)-1])
	}
	if final.State != "done" || fileHash(t, final.Path) != want {
		t.Fatalf("download on %s: %+v: want done with the original bytes", p.Name, final)
	}
	return final
}

func via(d transfer.DownloadStatus) string {
	for _, s := range d.Sources {
		if s.Bytes > 0 {
			return s.Path.Via
		}
	}
	return ""
}

// TestReachability downloads between peers that really cannot be dialled
// (behind NAT routers that drop new inbound connections): push from a
// NATed holder to a public downloader on the holder's supernode, and to
// that supernode itself; hole
// punching between two NATed peers, and relay when one NAT is symmetric,
// each with the downloader on another supernode than the holder's (it asks
// the holder's supernode with the ticket of the search hit).
func TestReachability(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several processes in network namespaces")
	}
	net := newReachNet(t)
	bs := startIn(t, net.pub, "bootstrap", "bootstrap", "--listen", "10.99.1.1:0", "--api", "127.0.0.1:0",
		"--state-dir", t.TempDir(), "--log-format", "json", "--check-in", "300ms",
		"--promotion-request-rate", "100", "--promotion-request-burst", "100")
	// Supernode A takes the holder and the public peer, and is then full
	// (two slots; every leaf keeps one supernode), so the NATed peers that
	// come later attach to B.
	snA := startIn(t, net.pub, "supernode-a", reachNode(t, bs.Ready.QUIC, "10.99.1.1:0", "--role", "supernode",
		"--heartbeat", "250ms", "--relay-max-rate", "4MB", "--max-leaves", "2")...)

	share := t.TempDir()
	const size = 3 << 20
	wants := map[string][32]byte{}
	for i, name := range []string{"pushed", "punched", "relayed", "own"} {
		wants[name] = writeRandom(t, share, name+" file.bin", size, int64(10+i))
	}
	one := []string{"--supernodes", "1"}
	holder := startIn(t, net.priv1, "holder", reachNode(t, bs.Ready.QUIC, "0.0.0.0:0", append(one, "--share", share)...)...)
	public := startIn(t, net.pub, "public", reachNode(t, bs.Ready.QUIC, "10.99.1.1:0", one...)...)
	holder.WaitAttached()
	public.WaitAttached()
	snB := startIn(t, net.pub, "supernode-b", reachNode(t, bs.Ready.QUIC, "10.99.1.1:0", "--role", "supernode",
		"--heartbeat", "250ms")...)
	natted := startIn(t, net.priv2, "natted", reachNode(t, bs.Ready.QUIC, "0.0.0.0:0", one...)...)
	symmetric := startIn(t, net.priv3, "symmetric", reachNode(t, bs.Ready.QUIC, "0.0.0.0:0", one...)...)
	for _, p := range []*proc{natted, symmetric} {
		proctest.Eventually(t, 20*time.Second, p.Name+" did not attach to supernode B", func() bool {
			att := attachedTo(p.Status())
			return len(att) == 1 && att[snB.Ready.PeerID]
		})
	}
	// Detection: the dial-backs tell each node, and hits carry it.
	holder.waitReach(proto.ReachUnreachable)
	public.waitReach(proto.ReachPublic)
	natted.waitReach(proto.ReachUnreachable)
	symmetric.waitReach(proto.ReachUnreachable)
	proctest.Eventually(t, 10*time.Second, "hits do not say the holder is unreachable, behind supernode A", func() bool {
		h := hasHolder(natted.search("pushed", time.Second), holder.Ready.PeerID)
		return h != nil && h.Holder.Reachable == proto.ReachUnreachable && h.Via != nil && h.Via.Supernode.ID == snA.Ready.PeerID
	})

	t.Run("push", func(t *testing.T) {
		d := getIn(t, public, findCID(t, public, "pushed"), wants["pushed"])
		if v := via(d); v != "push" {
			t.Fatalf("the public peer reached the NATed holder via %q, want push: %+v", v, d.Sources)
		}
	})
	t.Run("push for the holder's own supernode", func(t *testing.T) {
		// A supernode is nobody's leaf: it tells its own leaf to dial it.
		d := getIn(t, snA, findCID(t, snA, "own"), wants["own"])
		if v := via(d); v != "push" {
			t.Fatalf("supernode A reached its NATed leaf via %q, want push: %+v", v, d.Sources)
		}
	})
	t.Run("punch", func(t *testing.T) {
		d := getIn(t, natted, findCID(t, natted, "punched"), wants["punched"])
		if v := via(d); v != "punch" {
			t.Fatalf("two NATed peers connected via %q, want punch: %+v", v, d.Sources)
		}
	})
	t.Run("relay", func(t *testing.T) {
		d := getIn(t, symmetric, findCID(t, symmetric, "relayed"), wants["relayed"])
		if v := via(d); v != "relay" || !d.Relayed {
			t.Fatalf("peer behind a symmetric NAT connected via %q (relayed %v), want relay: %+v", v, d.Relayed, d.Sources)
		}
		var src transfer.SourceStatus
		for _, s := range d.Sources {
			if s.Path.Via == "relay" {
				src = s
			}
		}
		if src.Path.MaxBps != 4_000_000 || src.Path.MaxBytes != 256_000_000 {
			t.Errorf("relay limits %+v, want the supernode's 4MB/s and 256MB", src.Path)
		}
		out, err := proctest.CLIIn(t, symmetric.NS, "downloads", "--api", symmetric.Ready.API, "--json")
		if err != nil || !strings.Contains(out, `"relayed": true`) || !strings.Contains(out, `"relay_max_bps": 4000000`) {
			t.Errorf("strata downloads --json does not show the relay and its limit: %v\n%s", err, out)
		}
		out, err = proctest.CLIIn(t, symmetric.NS, "downloads", "--api", symmetric.Ready.API)
		if err != nil || !strings.Contains(out, "relayed, limit 3.8 MiB/s") {
			t.Errorf("strata downloads does not show the relay and its limit: %v\n%s", err, out)
		}
		if got := metric(t, snA, "strata_relayed_bytes_total"); got < size {
			t.Errorf("the holder's supernode relayed %v bytes, want at least the file's %d", got, size)
		}
	})
	// Punch and relay came from supernode B's leaves, with tickets.
	if got := metric(t, snA, "strata_reach_ticket_requests_total"); got < 2 {
		t.Errorf("supernode A served %v ticketed requests, want at least 2 (punch and relay from B's leaves)", got)
	}
	for _, p := range []*proc{natted, symmetric} {
		if attachedTo(p.Status())[snA.Ready.PeerID] {
			t.Errorf("%s attached to the holder's supernode: the test did not cross supernodes", p.Name)
		}
	}
}

// metric reads one unlabelled (or the first labelled) sample of name from
// p's /metrics.
func metric(t testing.TB, p *proc, name string) float64 {
	t.Helper()
	resp, err := p.HTTP().Get("http://" + p.Ready.API + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return findMetric(t, resp.Body, name)
}

func findMetric(t testing.TB, r io.Reader, name string) float64 {
	t.Helper()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
