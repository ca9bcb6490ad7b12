// Package e2e runs real strata processes over real QUIC on loopback: every
// address is port 0, read back from the process's ready line.
package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-p2p/strata/internal/mediagen"
	"github.com/strata-p2p/strata/internal/netns"
	"github.com/strata-p2p/strata/node"
	"github.com/strata-p2p/strata/proto"
	"github.com/strata-p2p/strata/test/internal/proctest"
)

func TestMain(m *testing.M) {
	// STRATA_E2E_RACE=0 for benchmarks: figures without the race detector's cost.
	proctest.Main(m, os.Getenv("STRATA_E2E_RACE") != "0")
}

// proc is a running strata process, with this package's helpers.
type proc struct{ *proctest.Proc }

// start runs `strata args...` and waits for its ready line.
func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	return &proc{proctest.Start(t, name, args...)}
}

// startEnv is start with extra environment variables ("KEY=value").
func startEnv(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	return &proc{proctest.StartEnv(t, name, env, args...)}
}

// startIn is start inside the network namespace ns.
func startIn(t testing.TB, ns *netns.NS, name string, args ...string) *proc {
	t.Helper()
	return &proc{proctest.StartIn(t, ns, name, args...)}
}

// search runs a search through p's API and returns the hits.
func (p *proc) search(q string, timeout time.Duration) []proto.Hit {
	p.T.Helper()
	u := "http://" + p.Ready.API + "/v1/search?" + url.Values{"q": {q}, "timeout": {timeout.String()}}.Encode()
	resp, err := p.HTTP().Get(u)
	if err != nil {
		p.T.Fatalf("search on %s: %v", p.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		p.T.Fatalf("search on %s: %s %s", p.Name, resp.Status, b)
	}
	var hits []proto.Hit
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var ev node.SearchEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			p.T.Fatalf("search line %q: %v", sc.Text(), err)
		}
		if ev.Hit != nil {
			hits = append(hits, *ev.Hit)
		}
	}
	return hits
}

// writeMP3 writes a small valid MP3 with tags into dir.
func writeMP3(t testing.TB, dir, name, artist, title string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := mediagen.WriteMP3(f, mediagen.MP3Options{Duration: 2 * time.Second, Bitrate: 128, SampleRate: 44100,
		Artist: artist, Title: title, Album: "E2E"}); err != nil {
		t.Fatal(err)
	}
	return path
}

func hasHolder(hits []proto.Hit, id proto.PeerID) *proto.Hit {
	for i := range hits {
		if hits[i].Holder.ID == id {
			return &hits[i]
		}
	}
	return nil
}
