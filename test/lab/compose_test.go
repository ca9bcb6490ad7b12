// Package labtest drives the docker compose lab (deploy/compose.yaml):
// `make lab-test` starts it and runs TestComposeLab, which checks the
// overlay forms, searches and downloads cross supernodes, a killed
// supernode's leaves come back, nodes join with a bootstrap server down,
// and peers behind the NAT and the firewall serve downloads (push, hole
// punching or relay through their supernode). Every check is PASS or FAIL.
package labtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/strata-p2p/strata/internal/lab"
	"github.com/strata-p2p/strata/proto"
)

// token is the lab's API token (STRATA_API_TOKEN in deploy/compose.yaml).
const token = "strata-lab-token-not-secret"

const project = "strata-lab"

// member is one container of the lab.
type member struct {
	name      string // compose service: sn1, leaf3, nat1, bs1
	container string
	ip        string
	role      string // STRATA_ROLE
	behindNAT bool   // on the home network, behind the router
	firewall  bool   // fw1: inbound dropped by its own firewall
	c         *lab.Client
	peer      proto.PeerID
}

type env struct {
	t       *testing.T
	ctx     context.Context
	members map[string]*member
	order   []string
	rep     *report
	// down is the containers the scenario has killed or stopped: their
	// APIs are not asked (a dead address costs seconds to time out).
	down map[string]bool
}

// report collects one line per check: PASS or FAIL, with what was
// measured.
type report struct {
	rows [][3]string
}

func (r *report) add(result, check, detail string) {
	r.rows = append(r.rows, [3]string{result, check, detail})
}

func (r *report) print() {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "\nstrata container lab report")
	for _, row := range r.rows {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", row[0], row[1], row[2])
	}
	_ = tw.Flush()
	fmt.Print(b.String())
}

func docker(ctx context.Context, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// discover finds the lab's containers, their addresses and roles.
func discover(ctx context.Context, tmp string) (map[string]*member, []string, error) {
	names, err := docker(ctx, "ps", "-a", "--filter", "label=com.docker.compose.project="+project, "--format", "{{.Names}}")
	if err != nil {
		return nil, nil, err
	}
	if names == "" {
		return nil, nil, fmt.Errorf("no containers of project %s; start the lab with `make lab`", project)
	}
	ms := map[string]*member{}
	var order []string
	for _, cn := range strings.Fields(names) {
		out, err := docker(ctx, "inspect", "-f", `{{index .Config.Labels "com.docker.compose.service"}}|{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}},{{end}}|{{range .Config.Env}}{{.}};{{end}}`, cn)
		if err != nil {
			return nil, nil, err
		}
		parts := strings.SplitN(out, "|", 3)
		m := &member{name: parts[0], container: cn}
		for _, nw := range strings.Split(strings.TrimSuffix(parts[1], ","), ",") {
			k, ip, _ := strings.Cut(nw, "=")
			if strings.HasSuffix(k, "_home") || strings.HasSuffix(k, "-home") {
				m.behindNAT = true
			}
			if m.ip == "" || strings.HasSuffix(k, "public") {
				m.ip = ip
			}
		}
		for _, kv := range strings.Split(parts[2], ";") {
			if v, ok := strings.CutPrefix(kv, "STRATA_ROLE="); ok {
				m.role = v
			}
		}
		m.firewall = strings.HasPrefix(m.name, "fw")
		if m.name == "router" {
			continue
		}
		port := "7501"
		if strings.HasPrefix(m.name, "bs") {
			port = "7301"
		}
		if m.ip == "" {
			return nil, nil, fmt.Errorf("%s has no address (is it running?)", cn)
		}
		m.c = &lab.Client{Name: m.name, API: m.ip + ":" + port, Token: token, Fetch: fetchFrom(cn, tmp)}
		ms[m.name] = m
		order = append(order, m.name)
	}
	slices.SortFunc(order, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	return ms, order, nil
}

// fetchFrom copies a file out of a container (docker cp) for verification.
func fetchFrom(container, tmp string) func(ctx context.Context, path string) (string, error) {
	return func(ctx context.Context, path string) (string, error) {
		dir, err := os.MkdirTemp(tmp, "fetch-")
		if err != nil {
			return "", err
		}
		local := filepath.Join(dir, filepath.Base(path))
		if _, err := docker(ctx, "cp", container+":"+path, local); err != nil {
			return "", err
		}
		return local, nil
	}
}

func (e *env) nodes() []*member {
	var ns []*member
	for _, n := range e.order {
		if m := e.members[n]; !strings.HasPrefix(n, "bs") {
			ns = append(ns, m)
		}
	}
	return ns
}

// up is the nodes the scenario has not taken down.
func (e *env) up() []*member {
	return slices.DeleteFunc(e.nodes(), func(m *member) bool { return e.down[m.name] })
}

// snapshot is every node's status at one moment (nodes that did not
// answer are left out).
func (e *env) snapshot() map[string]lab.NodeStatus {
	s := map[string]lab.NodeStatus{}
	for _, m := range e.up() {
		ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
		st, err := m.c.Status(ctx)
		cancel()
		if err == nil {
			s[m.name] = st
			m.peer = st.PeerID
		}
	}
	return s
}

func (e *env) byPeer(id proto.PeerID) string {
	for _, m := range e.members {
		if m.peer == id {
			return m.name
		}
	}
	return id.String()
}

// converged says whether the network is what the lab configures: exactly
// the nodes pinned as supernodes are supernodes, each with a neighbour,
// and every other live node is attached to a live one.
func (e *env) converged(s map[string]lab.NodeStatus, down map[string]bool) (bool, string) {
	var want, got, unattached []string
	for _, m := range e.nodes() {
		if down[m.name] {
			continue
		}
		if m.role == "supernode" {
			want = append(want, m.name)
		}
		st, ok := s[m.name]
		switch {
		case !ok:
			unattached = append(unattached, m.name+"(no answer)")
		case st.IsSupernode():
			got = append(got, m.name)
			if len(st.Supernode.Neighbours) == 0 {
				unattached = append(unattached, m.name+"(no mesh neighbour)")
			}
		case st.Attached == nil || down[e.byPeer(st.Attached.Supernode.ID)]:
			unattached = append(unattached, m.name)
		}
	}
	desc := fmt.Sprintf("supernodes [%s] (want [%s])", strings.Join(got, " "), strings.Join(want, " "))
	if len(unattached) > 0 {
		desc += ", not attached: " + strings.Join(unattached, " ")
	}
	return slices.Equal(want, got) && len(unattached) == 0, desc
}

// explain logs, for each live node that is not attached to a live
// supernode, its status and the end of its log, so a failure on a CI
// machine can be understood afterwards.
func (e *env) explain(s map[string]lab.NodeStatus, down map[string]bool) {
	for _, m := range e.nodes() {
		st, ok := s[m.name]
		if down[m.name] || (ok && (st.IsSupernode() || (st.Attached != nil && !down[e.byPeer(st.Attached.Supernode.ID)]))) {
			continue
		}
		if raw, err := m.c.StatusRaw(e.ctx); err == nil {
			b, _ := json.MarshalIndent(raw, "", "  ")
			e.t.Logf("status of %s:\n%s", m.name, b)
		}
		// A container's stderr (strata's log) comes out on docker's stderr.
		logs, err := exec.CommandContext(e.ctx, "docker", "logs", "--tail", "60", m.container).CombinedOutput()
		e.t.Logf("last log lines of %s (%v):\n%s", m.name, err, logs)
	}
}

func (e *env) waitHealthy(d time.Duration, names ...string) error {
	var last string
	ok := lab.Until(e.ctx, d, func() bool {
		for _, n := range names {
			out, err := docker(e.ctx, "inspect", "-f", "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", e.members[n].container)
			if err != nil || !strings.HasPrefix(out, "running") || strings.Contains(out, "starting") || strings.Contains(out, "unhealthy") {
				last = n + ": " + out
				return false
			}
		}
		return true
	})
	if !ok {
		return fmt.Errorf("not healthy after %v: %s", d, last)
	}
	return nil
}

// holders maps each content ID to the nodes sharing it, and keeps one
// entry per content ID.
func (e *env) holders() (map[proto.ContentID][]string, map[proto.ContentID]proto.FileEntry) {
	hs := map[proto.ContentID][]string{}
	entries := map[proto.ContentID]proto.FileEntry{}
	for _, m := range e.up() {
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		fs, err := m.c.Shares(ctx)
		cancel()
		if err != nil {
			continue
		}
		for _, f := range fs {
			if !slices.Contains(hs[f.ContentID], m.name) {
				hs[f.ContentID] = append(hs[f.ContentID], m.name)
			}
			entries[f.ContentID] = f
		}
	}
	return hs, entries
}

// query is the words a person would type for a file: artist and title for
// music, the name otherwise.
func query(f proto.FileEntry) string {
	if f.Artist != "" && f.Title != "" {
		return f.Artist + " " + f.Title
	}
	return strings.TrimSuffix(f.Name, filepath.Ext(f.Name))
}

// searchFinds searches from m for f and reports whether holder is among
// the hits, and the hits' count.
func (e *env) searchFinds(m *member, f proto.FileEntry, holder string) (bool, int, error) {
	hits, err := m.c.Search(e.ctx, query(f), 2*time.Second)
	if err != nil {
		return false, 0, err
	}
	for _, h := range hits {
		if h.Entry.ContentID == f.ContentID && e.byPeer(h.Holder.ID) == holder {
			return true, len(hits), nil
		}
	}
	return false, len(hits), nil
}

// dropCounter reads the packets a container's DROP rules counted.
func dropCounter(ctx context.Context, container, chain string) int {
	out, err := docker(ctx, "exec", container, "sh", "-c", "iptables -L "+chain+" -v -n -x 2>/dev/null || iptables-legacy -L "+chain+" -v -n -x")
	if err != nil {
		return -1
	}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == "DROP" {
			v, _ := strconv.Atoi(f[0])
			n += v
		}
	}
	return n
}

func TestComposeLab(t *testing.T) {
	if os.Getenv("STRATA_LAB") == "" {
		t.Skip("the container lab test runs with `make lab-test` (it needs a Docker engine and starts deploy/compose.yaml)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Minute)
	defer cancel()
	ms, order, err := discover(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, members: ms, order: order, rep: &report{}, down: map[string]bool{}}
	defer e.rep.print()
	// Whatever happens, leave the lab running as `make lab` left it.
	defer func() {
		var all []string
		for _, m := range e.members {
			all = append(all, m.container)
		}
		_, _ = docker(context.Background(), append([]string{"start"}, all...)...)
	}()

	// A known start: restart every container, so convergence is measured
	// from a cold start; their named volumes must give them their
	// identities back.
	before := map[string]proto.PeerID{}
	for n, st := range e.snapshot() {
		before[n] = st.PeerID
	}
	// The router first, with the nodes behind it stopped: a restarted
	// router forwards for a moment before its NAT rule is in, and a home
	// node's packets in that moment leave conntrack entries without NAT,
	// which the node's own traffic then keeps alive (seen: a NATed node cut
	// off from a bootstrap for minutes). Then every strata container.
	var home, cs []string
	for _, n := range order {
		if e.members[n].behindNAT {
			home = append(home, e.members[n].container)
		}
		cs = append(cs, e.members[n].container)
	}
	t0 := time.Now()
	if len(home) > 0 {
		if _, err := docker(ctx, append([]string{"stop", "-t", "3"}, home...)...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := docker(ctx, "restart", "-t", "3", "strata-router"); err != nil {
		t.Fatal(err)
	}
	routerUp := lab.Until(ctx, 30*time.Second, func() bool {
		out, err := docker(ctx, "inspect", "-f", "{{.State.Health.Status}}", "strata-router")
		return err == nil && out == "healthy"
	})
	if !routerUp {
		t.Fatal("the router was not healthy (NAT rules in) 30s after its restart")
	}
	if _, err := docker(ctx, append([]string{"restart", "-t", "3"}, cs...)...); err != nil {
		t.Fatal(err)
	}
	if err := e.waitHealthy(90*time.Second, order...); err != nil {
		e.rep.add("FAIL", "containers healthy", err.Error())
		t.Fatal(err)
	}
	e.rep.add("PASS", "containers healthy", fmt.Sprintf("%d strata containers restarted and healthy in %.1fs", len(order), time.Since(t0).Seconds()))

	e.converge(t0)
	if t.Failed() {
		return
	}
	var changed []string
	for n, id := range before {
		if m := e.members[n]; m.peer != id {
			changed = append(changed, n)
		}
	}
	if len(changed) > 0 {
		e.rep.add("FAIL", "identity kept", "new peer IDs after a restart: "+strings.Join(changed, " "))
		t.Errorf("identities lost: %v", changed)
	} else {
		e.rep.add("PASS", "identity kept", fmt.Sprintf("%d nodes came back with their peer IDs (named volumes)", len(before)))
	}
	a, f, b := e.crossSearch()
	if t.Failed() {
		return
	}
	e.download(a, f, b)
	e.killSupernode()
	e.bootstrapDown(a, f)
	e.behindNAT(a)
}

// converge waits until the network is what the lab configures, and
// reports the time since t0 (the restart).
func (e *env) converge(t0 time.Time) {
	var desc string
	ok := lab.Until(e.ctx, 60*time.Second, func() bool {
		var done bool
		done, desc = e.converged(e.snapshot(), nil)
		return done
	})
	if !ok {
		e.rep.add("FAIL", "converge", desc)
		e.t.Fatalf("the network did not converge in 60s: %s", desc)
	}
	var bsDesc []string
	for _, n := range e.order {
		if strings.HasPrefix(n, "bs") {
			var st struct {
				Totals struct {
					Supernodes int `json:"supernodes"`
					Leaves     int `json:"leaves"`
				} `json:"totals"`
			}
			raw, err := e.members[n].c.StatusRaw(e.ctx)
			if err == nil {
				b, _ := json.Marshal(raw)
				_ = json.Unmarshal(b, &st)
			}
			bsDesc = append(bsDesc, fmt.Sprintf("%s sees %d supernodes, %d leaves", n, st.Totals.Supernodes, st.Totals.Leaves))
		}
	}
	e.rep.add("PASS", "converge", fmt.Sprintf("%s %.1fs after the restart; %s", desc, time.Since(t0).Seconds(), strings.Join(bsDesc, "; ")))
}

// crossSearch: a public leaf finds a file held only by leaves of other
// supernodes. It returns the asker, the file and its holder.
func (e *env) crossSearch() (*member, proto.FileEntry, *member) {
	s := e.snapshot()
	hs, entries := e.holders()
	snOf := func(n string) string {
		if st, ok := s[n]; ok && st.Attached != nil {
			return e.byPeer(st.Attached.Supernode.ID)
		}
		return ""
	}
	// Files none of whose holders is the asker or on the asker's
	// supernode, music first.
	for _, audioOnly := range []bool{true, false} {
		for _, a := range e.nodes() {
			if a.role == "supernode" || a.behindNAT || a.firewall || snOf(a.name) == "" {
				continue
			}
			for cid, holders := range hs {
				var b *member
				for _, h := range holders {
					m := e.members[h]
					if h == a.name || snOf(h) == snOf(a.name) || m.role == "supernode" {
						b = nil
						break
					}
					if b == nil && !m.behindNAT && !m.firewall && snOf(h) != "" {
						b = m
					}
				}
				if b == nil || audioOnly && entries[cid].Media != proto.MediaAudio {
					continue
				}
				t0 := time.Now()
				found, n, err := e.searchFinds(a, entries[cid], b.name)
				took := time.Since(t0)
				if err != nil || !found {
					e.rep.add("FAIL", "search across supernodes", fmt.Sprintf("%s (on %s) searched %q: %d hits, none from %s (on %s); %v",
						a.name, snOf(a.name), query(entries[cid]), n, b.name, snOf(b.name), err))
					e.t.Errorf("cross-supernode search failed")
					return nil, proto.FileEntry{}, nil
				}
				e.rep.add("PASS", "search across supernodes", fmt.Sprintf("%s (on %s) found %q on %s (on %s): %d hits in a %.1fs search",
					a.name, snOf(a.name), entries[cid].Name, b.name, snOf(b.name), n, took.Seconds()))
				return a, entries[cid], b
			}
		}
	}
	e.rep.add("FAIL", "search across supernodes", "no file held only by leaves of other supernodes to look for")
	e.t.Errorf("no file to search for")
	return nil, proto.FileEntry{}, nil
}

func (e *env) download(a *member, f proto.FileEntry, b *member) {
	ctx, cancel := context.WithTimeout(e.ctx, 90*time.Second)
	defer cancel()
	t0 := time.Now()
	d, err := a.c.Get(ctx, f.ContentID, f.Name)
	if err != nil {
		e.rep.add("FAIL", "download leaf to leaf", err.Error())
		e.t.Errorf("download: %v", err)
		return
	}
	secs := time.Since(t0).Seconds()
	e.rep.add("PASS", "download leaf to leaf", fmt.Sprintf("%s got %q (%d bytes) from %s in %.2fs (%.0f KB/s), content ID recomputed from the copied file",
		a.name, d.Name, d.Size, b.name, secs, float64(d.Size)/1000/secs))
}

// killSupernode: docker kill one supernode; its leaves must attach to
// another and find files again.
func (e *env) killSupernode() {
	s := e.snapshot()
	victim := ""
	var leaves []string
	for _, m := range e.nodes() {
		if st, ok := s[m.name]; ok && m.role == "supernode" && len(st.Supernode.Leaves) > 0 && victim == "" {
			victim = m.name
		}
	}
	for _, m := range e.nodes() {
		if st, ok := s[m.name]; ok && st.Attached != nil && !st.IsSupernode() && e.byPeer(st.Attached.Supernode.ID) == victim {
			leaves = append(leaves, m.name)
		}
	}
	if victim == "" || len(leaves) == 0 {
		e.rep.add("FAIL", "supernode killed", "no supernode with leaves to kill")
		e.t.Error("no supernode with leaves")
		return
	}
	if _, err := docker(e.ctx, "kill", e.members[victim].container); err != nil {
		e.t.Fatal(err)
	}
	t0 := time.Now()
	e.down[victim] = true
	down := e.down
	var desc string
	ok := lab.Until(e.ctx, 30*time.Second, func() bool {
		var done bool
		done, desc = e.converged(e.snapshot(), down)
		return done
	})
	attachT := time.Since(t0)
	if !ok {
		e.rep.add("FAIL", "supernode killed", fmt.Sprintf("docker kill %s; after 30s: %s", victim, desc))
		e.t.Errorf("leaves of %s did not re-attach: %s", victim, desc)
		e.explain(e.snapshot(), down)
	} else {
		// Searchable again: a former leaf of the victim finds a file held
		// by a single leaf of another supernode.
		hs, entries := e.holders()
		var asker *member
		for _, n := range leaves {
			if m := e.members[n]; !m.behindNAT && !m.firewall && asker == nil {
				asker = m
			}
		}
		if asker == nil {
			asker = e.members[leaves[0]]
		}
		tries, last := 0, "a file on another supernode's leaf (none found)"
		searchOK := lab.Until(e.ctx, 30*time.Second, func() bool {
			tries++
			s := e.snapshot()
			mine, ok := s[asker.name]
			if !ok || mine.Attached == nil {
				return false
			}
			for cid, holders := range hs {
				h := e.members[holders[0]]
				st, ok := s[h.name]
				if len(holders) != 1 || h == asker || h.name == victim || h.behindNAT || !ok || st.Attached == nil ||
					st.Attached.Supernode.ID == mine.Attached.Supernode.ID {
					continue
				}
				found, n, err := e.searchFinds(asker, entries[cid], h.name)
				last = fmt.Sprintf("%q on %s (%d hits, %v)", query(entries[cid]), h.name, n, err)
				e.t.Logf("%.1fs after the kill: %s searched %s: found=%v", time.Since(t0).Seconds(), asker.name, last, found)
				return found
			}
			return false
		})
		searchT := time.Since(t0)
		if !searchOK {
			e.rep.add("FAIL", "supernode killed", fmt.Sprintf("docker kill %s: leaves [%s] re-attached in %.1fs but %s's searches for %s did not find it after %d tries",
				victim, strings.Join(leaves, " "), attachT.Seconds(), asker.name, last, tries))
			e.t.Errorf("searches after failover failed")
		} else {
			e.rep.add("PASS", "supernode killed", fmt.Sprintf("docker kill %s: its leaves [%s] re-attached in %.1fs, searchable again (%s) in %.1fs",
				victim, strings.Join(leaves, " "), attachT.Seconds(), asker.name, searchT.Seconds()))
		}
	}
	delete(e.down, victim)
	if _, err := docker(e.ctx, "start", e.members[victim].container); err != nil {
		e.t.Error(err)
	}
	if err := e.waitHealthy(60*time.Second, victim); err != nil {
		e.t.Error(err)
	}
}

// bootstrapDown: with one bootstrap server stopped a restarted node joins
// through the other, keeping its identity and downloads (named volume);
// with both stopped it needs its host cache (issue #6).
func (e *env) bootstrapDown(a *member, f proto.FileEntry) {
	var bss []string
	for _, n := range e.order {
		if strings.HasPrefix(n, "bs") {
			bss = append(bss, n)
		}
	}
	defer func() {
		for _, n := range bss {
			_, _ = docker(e.ctx, "start", e.members[n].container)
		}
		_ = e.waitHealthy(60*time.Second, bss...)
	}()
	before := a.peer
	restartJoin := func() (time.Duration, lab.NodeStatus, error) {
		if _, err := docker(e.ctx, "restart", "-t", "5", a.container); err != nil {
			return 0, lab.NodeStatus{}, err
		}
		t0 := time.Now()
		var st lab.NodeStatus
		ok := lab.Until(e.ctx, 30*time.Second, func() bool {
			var err error
			st, err = a.c.Status(e.ctx)
			return err == nil && st.Attached != nil
		})
		if !ok {
			return time.Since(t0), st, fmt.Errorf("%s not attached 30s after its restart", a.name)
		}
		return time.Since(t0), st, nil
	}
	if _, err := docker(e.ctx, "stop", "-t", "2", e.members[bss[0]].container); err != nil {
		e.t.Fatal(err)
	}
	took, st, err := restartJoin()
	switch {
	case err != nil:
		e.rep.add("FAIL", "one bootstrap down", err.Error())
		e.t.Error(err)
		return
	case st.PeerID != before:
		e.rep.add("FAIL", "one bootstrap down", fmt.Sprintf("%s came back as %s, not %s: its identity was lost", a.name, st.PeerID, before))
		e.t.Error("identity lost")
		return
	}
	kept := "no download to check"
	if f.Name != "" {
		fs, _ := a.c.Shares(e.ctx)
		kept = "its download is gone"
		for _, x := range fs {
			if x.ContentID == f.ContentID {
				kept = "it still shares its download " + strconv.Quote(f.Name)
			}
		}
		if strings.Contains(kept, "gone") {
			e.t.Errorf("%s lost its download across a restart", a.name)
		}
	}
	result := "PASS"
	if strings.Contains(kept, "gone") {
		result = "FAIL"
	}
	e.rep.add(result, "one bootstrap down", fmt.Sprintf("docker stop %s; %s restarted, same peer ID, attached in %.1fs through %s; %s", bss[0], a.name, took.Seconds(), bss[1], kept))

	// Every bootstrap down: only a host cache lets the node back in.
	raw, err := a.c.StatusRaw(e.ctx)
	if err != nil {
		e.t.Error(err)
		return
	}
	for _, n := range bss[1:] {
		if _, err := docker(e.ctx, "stop", "-t", "2", e.members[n].container); err != nil {
			e.t.Fatal(err)
		}
	}
	took, _, err = restartJoin()
	if err != nil {
		e.rep.add("FAIL", "every bootstrap down", err.Error()+" (host cache: "+string(raw["host_cache"])+" entries)")
		e.t.Error(err)
		return
	}
	e.rep.add("PASS", "every bootstrap down", fmt.Sprintf("both bootstraps stopped; %s restarted and attached through its host cache in %.1fs", a.name, took.Seconds()))
}

// behindNAT: a leaf behind the router downloads from the public side
// (outbound works through the NAT), and a public leaf downloads a file only
// the NATed leaf holds (needs push, hole punching or relay).
func (e *env) behindNAT(a *member) {
	hs, entries := e.holders()
	var nat *member
	for _, m := range e.nodes() {
		if m.behindNAT {
			nat = m
			break
		}
	}
	if nat == nil {
		e.rep.add("FAIL", "NAT", "no node behind the router")
		e.t.Error("no NAT node")
		return
	}
	// Outbound: the NATed leaf fetches a file only a public leaf holds.
	var out, in proto.FileEntry
	for cid, holders := range hs {
		if len(holders) != 1 {
			continue
		}
		h := e.members[holders[0]]
		switch {
		case h == nat && in.Name == "":
			in = entries[cid]
		case h != nat && !h.behindNAT && !h.firewall && h.role != "supernode" && out.Name == "" && entries[cid].Size < 2<<20:
			out = entries[cid]
		}
	}
	ctx, cancel := context.WithTimeout(e.ctx, 60*time.Second)
	t0 := time.Now()
	d, err := nat.c.Get(ctx, out.ContentID, out.Name)
	cancel()
	if err != nil {
		e.rep.add("FAIL", "download from behind the NAT", err.Error())
		e.t.Error(err)
	} else {
		e.rep.add("PASS", "download from behind the NAT", fmt.Sprintf("%s got %q (%d bytes) through the router in %.2fs, verified", nat.name, d.Name, d.Size, time.Since(t0).Seconds()))
	}

	// Inbound: a public leaf fetches what only the NATed leaf has, and
	// what only the firewalled leaf has. Each run's download is shared by
	// the downloader afterwards, so a lab that has run the test before may
	// hold no such file: one is written for the test then.
	if in.Name == "" {
		in = e.freshFile(nat)
	}
	e.servesInbound(a, nat, in, "NATed peer serves", "strata-router", "the router")
	for _, m := range e.nodes() {
		if !m.firewall {
			continue
		}
		var only proto.FileEntry
		for cid, holders := range hs {
			if len(holders) == 1 && holders[0] == m.name {
				only = entries[cid]
				break
			}
		}
		if only.Name == "" {
			only = e.freshFile(m)
		}
		e.servesInbound(a, m, only, "firewalled peer serves", m.container, m.name+"'s firewall")
	}
}

// freshFile writes random bytes into m's share folder (its image has a
// shell) and waits until m shares them; a zero entry if it cannot.
func (e *env) freshFile(m *member) proto.FileEntry {
	name := fmt.Sprintf("lab-test %s %d.bin", m.name, time.Now().UnixNano())
	if _, err := docker(e.ctx, "exec", m.container, "sh", "-c", `head -c 300000 /dev/urandom > "/data/share/`+name+`"`); err != nil {
		e.t.Logf("writing a file for %s: %v", m.name, err)
		return proto.FileEntry{}
	}
	var f proto.FileEntry
	lab.Until(e.ctx, 15*time.Second, func() bool {
		fs, err := m.c.Shares(e.ctx)
		for _, x := range fs {
			if x.Name == name && err == nil {
				f = x
			}
		}
		return f.Name != ""
	})
	return f
}

// servesInbound: a downloads f, which only target holds, while target
// cannot be reached from outside; the packets dropped by the container
// fw's iptables DROP rules are counted meanwhile.
func (e *env) servesInbound(a, target *member, f proto.FileEntry, check, fw, fwName string) {
	if f.Name == "" {
		e.rep.add("FAIL", check, target.name+" holds no file of its own")
		e.t.Errorf("%s: no file only %s holds", check, target.name)
		return
	}
	drops := dropCounter(e.ctx, fw, "FORWARD") + dropCounter(e.ctx, fw, "INPUT")
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	t0 := time.Now()
	d, err := a.c.Get(ctx, f.ContentID, f.Name)
	cancel()
	dropped := dropCounter(e.ctx, fw, "FORWARD") + dropCounter(e.ctx, fw, "INPUT") - drops
	if err == nil {
		e.rep.add("PASS", check, fmt.Sprintf("%s got %q from %s in %.2fs, verified", a.name, d.Name, target.name, time.Since(t0).Seconds()))
		return
	}
	e.rep.add("FAIL", check, fmt.Sprintf("%s could not fetch %q from %s in 20s (push, hole punching and relay all failed); %s dropped %d inbound packets meanwhile: %v",
		a.name, f.Name, target.name, fwName, dropped, err))
	e.t.Error(err)
	_ = a.c.Cancel(e.ctx, f.ContentID)
}
