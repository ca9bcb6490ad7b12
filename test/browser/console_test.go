package browser

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/strata-p2p/strata/internal/mediagen"
	"github.com/strata-p2p/strata/internal/transfer"
	"github.com/strata-p2p/strata/node"
	"github.com/strata-p2p/strata/test/internal/proctest"
)

// network is a bootstrap server, one supernode and two leaves: the holder
// shares a few files, the getter shares one and downloads from the holder.
type network struct {
	bs, sn, holder, getter *proc
	holderDir              string
	payload                []byte
}

const payloadName = "browsertest payload.bin"

func startNetwork(t *testing.T) *network {
	t.Helper()
	n := &network{holderDir: t.TempDir()}
	writeMP3(t, n.holderDir, "Alpha Band - browsertest one.mp3", 128)
	writeMP3(t, n.holderDir, "Beta Band - browsertest two.mp3", 96)
	writeFile(t, n.holderDir, "browsertest notes.pdf", []byte("%PDF-1.4 not really a PDF\n"))
	// Big enough, and the holder slow enough, that the progress bar is
	// seen moving: about 3 s at 2 MB/s.
	n.payload = make([]byte, 6<<20)
	rand.New(rand.NewSource(1)).Read(n.payload)
	writeFile(t, n.holderDir, payloadName, n.payload)
	getterDir := t.TempDir()
	writeMP3(t, getterDir, "Getter - own song.mp3", 128)

	n.bs = start(t, "bootstrap", proctest.BootstrapArgs(t)...)
	n.sn = start(t, "supernode", proctest.NodeArgs(t, n.bs.Ready.QUIC, "--role", "supernode")...)
	n.holder = start(t, "holder", proctest.NodeArgs(t, n.bs.Ready.QUIC, "--role", "leaf", "--share", n.holderDir, "--max-upload-rate", "2MB")...)
	n.getter = start(t, "getter", proctest.NodeArgs(t, n.bs.Ready.QUIC, "--role", "leaf", "--share", getterDir)...)
	for _, p := range []*proc{n.holder, n.getter} {
		proctest.Eventually(t, 15*time.Second, p.Name+" did not attach to the supernode", func() bool {
			var st node.Status
			p.GetJSON("/v1/status", &st)
			return st.Attached != nil
		})
	}
	proctest.Eventually(t, 15*time.Second, "the supernode did not index the holder's four files", func() bool {
		var st node.Status
		n.sn.GetJSON("/v1/status", &st)
		return st.Supernode != nil && st.Supernode.IndexFiles >= 5
	})
	return n
}

func writeFile(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeMP3(t *testing.T, dir, name string, kbps int) {
	t.Helper()
	var b bytes.Buffer
	if err := mediagen.WriteMP3(&b, mediagen.MP3Options{Duration: 2 * time.Second, Bitrate: kbps, SampleRate: 44100,
		Artist: "Browser", Title: name, Album: "Console"}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, name, b.Bytes())
}

// TestConsoles drives both consoles against one small network.
func TestConsoles(t *testing.T) {
	b := newBrowser(t)
	n := startNetwork(t)
	n.getter.requireConsole("console.NodeHandler")
	n.bs.requireConsole("console.BootstrapHandler")

	t.Run("search", func(t *testing.T) { testSearch(t, b, n) })
	t.Run("download", func(t *testing.T) { testDownload(t, b, n) })
	t.Run("supernode page", func(t *testing.T) { testSupernodePage(t, b, n) })
	t.Run("network map", func(t *testing.T) { testNetworkMap(t, b, n) })
	t.Run("promotion panel", func(t *testing.T) { testPromotionPanel(t, b, n) })
}

// resultNames returns the names in the result table, sorted.
func resultNames(tb *tab) []string {
	names := eval[[]string](tb, `[...document.querySelectorAll("#result-rows tr[data-cid] td:first-child")].map(td => td.firstChild.textContent)`)
	slices.Sort(names)
	return names
}

// search fills the form, submits it and waits for the "done" status.
func search(t *testing.T, tb *tab, words, bitrate, sizeMin, typ string) (query string, names []string) {
	t.Helper()
	// chromedp.SetValue refuses to set "" (it reads the value back and
	// takes "" for a failure), so the fields are set by script; the words
	// are typed.
	setForm := fmt.Sprintf(`(() => {
		const set = (id, v) => { document.getElementById(id).value = v; return document.getElementById(id).value === v; };
		return set("q", "") && set("f-bitrate", %q) && set("f-size-min", %q) && set("f-type", %q) && set("timeout", "2s");
	})()`, bitrate, sizeMin, typ)
	if !eval[bool](tb, setForm) {
		t.Fatalf("could not set the filters to bitrate %q, size %q, type %q", bitrate, sizeMin, typ)
	}
	tb.run("type the words", chromedp.SendKeys(chromedp.CSS("#q"), words))
	tb.run("click Search", chromedp.Click(chromedp.CSS("#search-go")))
	// The search ends after its timeout (2 s) unless 200 hits come first.
	tb.waitJS(20*time.Second, "the search did not finish",
		`document.getElementById("search-stop").disabled && /hit|No hits/.test(document.getElementById("search-status").textContent)`)
	return eval[string](tb, `document.getElementById("search-query").textContent`), resultNames(tb)
}

// testSearch: words typed into the getter's page find the holder's files;
// the filter controls narrow the results through the query language.
func testSearch(t *testing.T, b *browser, n *network) {
	tb := b.open(t, n.getter.url())
	tb.waitJS(10*time.Second, "the page did not show the node's peer ID",
		`document.getElementById("peer-id").textContent === "`+n.getter.Ready.PeerID.String()+`"`)

	for _, tc := range []struct {
		bitrate, sizeMin, typ string
		query                 string
		names                 []string
	}{
		{"", "", "", "browsertest", []string{"Alpha Band - browsertest one.mp3", "Beta Band - browsertest two.mp3",
			"browsertest notes.pdf", payloadName}},
		{"128", "", "audio", "browsertest bitrate>=128 type:audio", []string{"Alpha Band - browsertest one.mp3"}},
		{"", "", "document", "browsertest type:document", []string{"browsertest notes.pdf"}},
		{"", "5", "", "browsertest size>=5MB", []string{payloadName}},
	} {
		var query string
		var names []string
		// A new file may take a rescan to reach the index: retry until the
		// expected names show, for a while.
		deadline := time.Now().Add(20 * time.Second)
		for {
			query, names = search(t, tb, "browsertest", tc.bitrate, tc.sizeMin, tc.typ)
			if slices.Equal(names, tc.names) || time.Now().After(deadline) {
				break
			}
		}
		if query != tc.query {
			t.Errorf("query sent %q, want %q", query, tc.query)
		}
		if !slices.Equal(names, tc.names) {
			t.Errorf("search %q shows %q, want %q", query, names, tc.names)
		}
		if tc.query == "browsertest" {
			tb.screenshot("node-search")
		}
	}
}

// downloadRow is what the first row of the downloads table shows.
type downloadRow struct {
	State, Percent, Value, Max string
}

// testDownload: the Download button of a result starts a download whose
// progress bar reaches done, and the file arrives intact.
func testDownload(t *testing.T, b *browser, n *network) {
	tb := b.open(t, n.getter.url())
	_, names := search(t, tb, "payload", "", "", "")
	if !slices.Equal(names, []string{payloadName}) {
		t.Fatalf("search for payload shows %q", names)
	}
	tb.run("click Download", chromedp.Click(chromedp.CSS(`#result-rows tr[data-cid] button`)))

	// Watch the progress bar until it is done; keep a screenshot of it
	// part way.
	var percents []string
	var shot bool
	deadline := time.Now().Add(60 * time.Second)
	for {
		row := eval[downloadRow](tb, `(() => {
			const tr = document.querySelector("#download-rows tr");
			if (!tr) return {};
			const p = tr.querySelector("progress");
			return {State: tr.dataset.state || "", Percent: tr.dataset.percent || "", Value: String(p.value), Max: String(p.max)};
		})()`)
		if row.Percent != "" && (len(percents) == 0 || percents[len(percents)-1] != row.Percent) {
			percents = append(percents, row.Percent)
		}
		if row.State == "downloading" && row.Percent != "" && row.Percent != "0" && !shot {
			tb.screenshot("node-download-progress")
			shot = true
		}
		if row.State == transfer.StateDone {
			if row.Percent != "100" || row.Value != row.Max {
				t.Errorf("done, but the bar shows %s%% (%s of %s)", row.Percent, row.Value, row.Max)
			}
			break
		}
		if row.State == transfer.StateFailed || time.Now().After(deadline) {
			tb.screenshot("node-download-stuck")
			t.Fatalf("download did not finish: state %q, progress seen %v", row.State, percents)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("progress seen: %v%%", percents)
	button := eval[string](tb, `document.querySelector("#result-rows tr[data-cid] button").textContent`)
	if button != "Downloaded" {
		t.Errorf("the result's button says %q after the download, want Downloaded", button)
	}
	tb.screenshot("node-download-done")

	var list []transfer.DownloadStatus
	n.getter.GetJSON("/v1/downloads", &list)
	if len(list) != 1 || list[0].State != transfer.StateDone || list[0].Path == "" {
		t.Fatalf("downloads on the getter: %+v", list)
	}
	got, err := os.ReadFile(list[0].Path)
	if err != nil {
		t.Fatalf("downloaded file: %v", err)
	}
	if sha256.Sum256(got) != sha256.Sum256(n.payload) {
		t.Errorf("%s: %d bytes that differ from the %d shared", list[0].Path, len(got), len(n.payload))
	}
}

// testSupernodePage: a supernode's console lists its two leaves.
func testSupernodePage(t *testing.T, b *browser, n *network) {
	tb := b.open(t, n.sn.url())
	tb.waitJS(10*time.Second, "the supernode page does not list two leaves",
		`document.getElementById("role").textContent === "supernode" && document.querySelectorAll("#leaf-rows tr[data-peer]").length === 2`)
	if got := eval[string](tb, `document.getElementById("sn-leaves").textContent`); got != "2 of 100" {
		t.Errorf("leaves shown as %q, want \"2 of 100\"", got)
	}
	tb.screenshot("node-supernode")
}

// mapCounts returns what the network map draws.
type mapCounts struct {
	Supernodes, Leaves, Links, Fresh, Expired int
	Source, Changes                           string
}

func readMap(tb *tab) mapCounts {
	return eval[mapCounts](tb, `(() => {
		const n = (sel) => document.querySelectorAll("#map " + sel).length;
		return {Supernodes: n('[data-kind="supernode"]'), Leaves: n('[data-kind="leaf"]'), Links: n('[data-kind="link"]'),
			Fresh: n("g.fresh"), Expired: n('[data-kind="expired"]'),
			Source: document.getElementById("source").textContent,
			Changes: document.getElementById("changes").textContent};
	})()`)
}

// testNetworkMap: the bootstrap page draws the supernode and its two
// leaves; a supernode that registers appears highlighted (with its mesh
// link) and one that stops is shown expiring.
func testNetworkMap(t *testing.T, b *browser, n *network) {
	tb := b.open(t, n.bs.url())
	tb.waitJS(20*time.Second, "the map does not show 1 supernode with 2 leaves",
		`document.querySelectorAll('#map [data-kind="supernode"]').length === 1 &&
		 document.querySelectorAll('#map [data-kind="leaf"]').length === 2`)
	c := readMap(tb)
	t.Logf("map source: %s", c.Source)
	topology := c.Source == "live topology"
	if topology {
		// The leaves are named: they are the two leaf nodes.
		peers := eval[[]string](tb, `[...document.querySelectorAll('#map [data-kind="leaf"]')].map(e => e.dataset.peer).sort()`)
		want := []string{n.holder.Ready.PeerID.String(), n.getter.Ready.PeerID.String()}
		slices.Sort(want)
		if !slices.Equal(peers, want) {
			t.Errorf("leaves on the map %q, want %q", peers, want)
		}
	}
	totals := eval[[]string](tb, `["total-supernodes", "total-leaves"].map(id => document.getElementById(id).textContent)`)
	if !slices.Equal(totals, []string{"1", "2"}) {
		t.Errorf("totals say %q supernodes and leaves, want 1 and 2", totals)
	}
	tb.screenshot("network-map")

	// A second supernode registers: it appears, highlighted, linked to the
	// first when the topology is known.
	sn2 := start(t, "supernode2", proctest.NodeArgs(t, n.bs.Ready.QUIC, "--role", "supernode")...)
	want := `document.querySelectorAll('#map [data-kind="supernode"]').length === 2 && document.querySelectorAll("#map g.fresh").length === 1`
	if topology {
		want += ` && document.querySelectorAll('#map [data-kind="link"]').length === 1`
	}
	tb.waitJS(20*time.Second, "the new supernode is not shown as new (and linked)", want)
	// A leaf may take the new supernode as its second (--supernodes 2):
	// it is then drawn under both, but it is still one of two leaves.
	if topology {
		peers := eval[[]string](tb, `[...new Set([...document.querySelectorAll('#map [data-kind="leaf"]')].map(e => e.dataset.peer))].sort()`)
		if len(peers) != 2 {
			t.Errorf("%d distinct leaves on the map after a supernode joined, want 2: %q", len(peers), peers)
		}
		if got := eval[string](tb, `document.getElementById("total-leaves").textContent`); got != "2" {
			t.Errorf("the total says %q leaves after a supernode joined, want 2 (leaves, not sessions)", got)
		}
	} else if c = readMap(tb); c.Leaves < 2 || c.Leaves > 4 {
		t.Errorf("%d leaf dots on the map after a supernode joined, want 2 to 4 (two leaves, one or two supernodes each)", c.Leaves)
	}
	tb.waitJS(5*time.Second, "the change log does not show the registration",
		`document.getElementById("changes").textContent.includes("promoted/registered")`)
	tb.screenshot("network-map-promoted")

	// It stops: it expires from the bootstrap server (3.5 s without a
	// heartbeat) and is shown going, then gone.
	sn2.Stop()
	tb.waitJS(20*time.Second, "the stopped supernode is not shown expiring",
		`document.querySelectorAll('#map [data-kind="expired"]').length === 1 &&
		 document.getElementById("changes").textContent.includes("expired/demoted")`)
	tb.screenshot("network-map-expired")
	tb.waitJS(15*time.Second, "the expired supernode did not leave the map",
		`document.querySelectorAll('#map [data-kind="expired"]').length === 0 &&
		 document.querySelectorAll('#map [data-kind="supernode"]').length === 1`)
}

// testPromotionPanel: a --role auto node's page shows what the promotion
// engine measured (cores, index lookups), the gates of its latest decision
// and the decision history, the same as its status says.
func testPromotionPanel(t *testing.T, b *browser, n *network) {
	auto := start(t, "auto", proctest.NodeArgs(t, n.bs.Ready.QUIC, "--role", "auto", "--bench-files", "2000")...)
	var st node.Status
	proctest.Eventually(t, 30*time.Second, "the auto node's status has no promotion decision", func() bool {
		auto.GetJSON("/v1/status", &st)
		return st.Promotion != nil && st.Promotion.Policy.Measured && len(st.Promotion.Policy.Decisions) > 0
	})
	tb := b.open(t, auto.url())
	tb.waitJS(20*time.Second, "the promotion panel does not show measurements, gates and decisions",
		`!document.getElementById("promo").hidden && document.getElementById("promo-none").hidden &&
		 /cores/.test(document.getElementById("promo-capacity").textContent) &&
		 /index lookups/.test(document.getElementById("promo-capacity").textContent) &&
		 document.querySelectorAll("#promo-gates li").length > 0 &&
		 document.querySelectorAll("#decision-rows tr time").length > 0`)
	auto.GetJSON("/v1/status", &st)
	decisions := st.Promotion.Policy.Decisions
	last := decisions[len(decisions)-1]
	gates := eval[[]string](tb, `[...document.querySelectorAll("#promo-gates li")].map(li => li.textContent)`)
	if len(gates) != len(last.Gates) {
		t.Errorf("the page shows %d gates %q, the latest decision has %d", len(gates), gates, len(last.Gates))
	}
	for _, g := range last.Gates {
		if !slices.ContainsFunc(gates, func(s string) bool { return strings.Contains(s, g.Name+": ") }) {
			t.Errorf("gate %q is not on the page: %q", g.Name, gates)
		}
	}
	if why := eval[string](tb, `document.querySelector("#decision-rows tr td:last-child").textContent`); why == "" {
		t.Error("the newest decision row gives no reason")
	}
	tb.screenshot("node-promotion")
}
