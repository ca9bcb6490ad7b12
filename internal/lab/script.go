package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/strata-p2p/strata/proto"
)

// A Script is a scripted experiment: one step a line, run in order against
// a lab, each printed with what happened and how long it took. The first
// failed step ends the run with an error. ScriptHelp lists the steps.
type Script struct {
	Name  string
	Steps []Step
}

// Step is one line of a script.
type Step struct {
	Line int
	Verb string
	Args []string
	Text string // the line as written, without its comment
}

// ScriptHelp describes the script language.
const ScriptHelp = `One step a line; # starts a comment; "double quotes" group words.
  nodes N                  start nodes until N are running
  add N                    start N more nodes
  wait COND [TIMEOUT]      wait until COND holds (default 20s)
  expect COND              fail unless COND holds now
  kill NODE                SIGKILL: a crash
  stop NODE                SIGTERM: a clean leave
  cut NODE                 SIGSTOP: the node's links go dead (packets dropped, not refused)
  heal NODE                SIGCONT: undo a cut
  restart NODE             stop NODE and start it again on its state folder and addresses;
                           fails if it comes back with another peer ID
  search NODE QUERY [expect OP N] [timeout D]
                           search through NODE; the hits are kept for get and "hits"
  get NODE [N] [timeout D] download hit N (default 1) of the last search, counting only
                           hits held by other nodes; the file is read back and verified
  status                   print every node's role and supernode
  sleep D                  wait D (a duration such as 500ms or 2s)
  echo TEXT                print TEXT
NODE is node1, node2, ... or bootstrap, or "supernode" / "leaf" for the first live
one (the step prints which it chose). COND is "attached" (every live node is a
supernode or attached to one), or NAME OP N with NAME one of supernodes, leaves,
nodes (running, not cut), hits (of the last search), OP one of = != < <= > >=.`

// ParseScript reads a script. An unknown step or a malformed one is an
// error naming name:line.
func ParseScript(name string, r io.Reader) (*Script, error) {
	s := &Script{Name: name}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if i := strings.Index(text, "#"); i >= 0 && !inQuotes(text[:i]) {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		words, err := splitWords(text)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, line, err)
		}
		st := Step{Line: line, Verb: words[0], Args: words[1:], Text: text}
		if err := st.check(); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, line, err)
		}
		s.Steps = append(s.Steps, st)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

func inQuotes(s string) bool { return strings.Count(s, `"`)%2 == 1 }

// splitWords splits on spaces, keeping "quoted words" together.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	quoted, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		return nil, errors.New(`unclosed "`)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// check validates a step's arguments without running it.
func (st Step) check() error {
	n := len(st.Args)
	want := func(lo, hi int, usage string) error {
		if n < lo || n > hi {
			return fmt.Errorf("%s: want %s", st.Verb, usage)
		}
		return nil
	}
	switch st.Verb {
	case "nodes", "add":
		if err := want(1, 1, st.Verb+" N"); err != nil {
			return err
		}
		if v, err := strconv.Atoi(st.Args[0]); err != nil || v < 0 || v > MaxNodes {
			return fmt.Errorf("%s: %q is not a number of nodes from 0 to %d", st.Verb, st.Args[0], MaxNodes)
		}
	case "wait", "expect":
		if n == 0 {
			return fmt.Errorf("%s: want a condition, such as supernodes>=2 or attached", st.Verb)
		}
		_, _, err := st.condition()
		return err
	case "kill", "stop", "cut", "heal", "restart":
		return want(1, 1, st.Verb+" NODE")
	case "search":
		if n < 2 {
			return errors.New("search: want search NODE QUERY [expect OP N] [timeout D]")
		}
		_, _, err := st.options(2, "expect", "timeout")
		return err
	case "get":
		if n < 1 {
			return errors.New("get: want get NODE [N] [timeout D]")
		}
		_, rest, err := st.options(1, "timeout")
		if err != nil {
			return err
		}
		if len(rest) > 1 {
			return fmt.Errorf("get: unexpected %q", rest[1])
		}
		if len(rest) == 1 {
			if v, err := strconv.Atoi(rest[0]); err != nil || v < 1 {
				return fmt.Errorf("get: hit %q is not a number from 1", rest[0])
			}
		}
	case "status":
		return want(0, 0, "status (no arguments)")
	case "sleep":
		if err := want(1, 1, "sleep DURATION"); err != nil {
			return err
		}
		if _, err := time.ParseDuration(st.Args[0]); err != nil {
			return fmt.Errorf("sleep: %q is not a duration such as 500ms or 2s", st.Args[0])
		}
	case "echo":
	default:
		return fmt.Errorf("unknown step %q; the steps are nodes, add, wait, expect, kill, stop, cut, heal, restart, search, get, status, sleep, echo", st.Verb)
	}
	return nil
}

var condRE = regexp.MustCompile(`^([a-z]+)\s*(>=|<=|!=|==|=|<|>)\s*([0-9]+)$`)

// cond is a parsed condition.
type cond struct {
	what string // attached, supernodes, leaves, nodes, hits
	op   string
	n    int
}

func (c cond) String() string {
	if c.what == "attached" {
		return "attached"
	}
	return fmt.Sprintf("%s%s%d", c.what, c.op, c.n)
}

func (c cond) holds(v int) bool {
	switch c.op {
	case "=", "==":
		return v == c.n
	case "!=":
		return v != c.n
	case "<":
		return v < c.n
	case "<=":
		return v <= c.n
	case ">":
		return v > c.n
	default:
		return v >= c.n
	}
}

// condition parses the arguments of wait/expect: a condition and, for
// wait, an optional timeout last.
func (st Step) condition() (cond, time.Duration, error) {
	args := st.Args
	timeout := 20 * time.Second
	if st.Verb == "wait" && len(args) > 1 {
		if d, err := time.ParseDuration(args[len(args)-1]); err == nil {
			timeout, args = d, args[:len(args)-1]
		}
	}
	text := strings.Join(args, " ")
	if text == "attached" {
		return cond{what: "attached"}, timeout, nil
	}
	m := condRE.FindStringSubmatch(text)
	if m == nil {
		return cond{}, 0, fmt.Errorf("%s: %q is not a condition; use attached or NAME OP N such as supernodes>=2", st.Verb, text)
	}
	switch m[1] {
	case "supernodes", "leaves", "nodes", "hits":
	default:
		return cond{}, 0, fmt.Errorf("%s: unknown %q in %q; use supernodes, leaves, nodes or hits", st.Verb, m[1], text)
	}
	n, _ := strconv.Atoi(m[3])
	return cond{what: m[1], op: m[2], n: n}, timeout, nil
}

// options splits the arguments after the first skip into named options
// (expect OP N / expect>=N, timeout D / timeout=D) and the rest.
func (st Step) options(skip int, names ...string) (map[string]string, []string, error) {
	opts := map[string]string{}
	var rest []string
	args := st.Args[skip:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		name := optionName(a, names)
		if name == "" {
			rest = append(rest, a)
			continue
		}
		v := strings.TrimPrefix(a[len(name):], "=")
		if name == "expect" {
			v = a[len(name):] // its value starts with the operator
		}
		if v == "" && i+1 < len(args) { // expect >=1, timeout 3s
			i++
			v = args[i]
		}
		if name == "expect" && !strings.ContainsAny(v, "0123456789") && i+1 < len(args) { // expect >= 1
			i++
			v += args[i]
		}
		opts[name] = v
	}
	if v, ok := opts["timeout"]; ok {
		if d, err := time.ParseDuration(v); err != nil || d <= 0 || d > time.Hour {
			return nil, nil, fmt.Errorf("%s: timeout %q is not a duration such as 3s", st.Verb, v)
		}
	}
	if v, ok := opts["expect"]; ok {
		if !condRE.MatchString("hits" + v) {
			return nil, nil, fmt.Errorf("%s: expect %q: want OP N such as >=1 or =0", st.Verb, v)
		}
	}
	return opts, rest, nil
}

// optionName is the option a word starts, if any: the name alone or
// followed by = < > or !.
func optionName(word string, names []string) string {
	for _, name := range names {
		if word == name || strings.HasPrefix(word, name) && strings.ContainsRune("=<>!", rune(word[len(name)])) {
			return name
		}
	}
	return ""
}

// runner holds what a script run remembers between steps.
type runner struct {
	l      *Lab
	out    io.Writer
	start  time.Time
	hits   []proto.Hit
	asker  string // node that ran the last search
	script *Script
}

// Run runs the script against l, printing each step to out. It returns
// the first failure as an error naming the script's line.
func (s *Script) Run(ctx context.Context, l *Lab, out io.Writer) error {
	r := &runner{l: l, out: out, start: time.Now(), script: s}
	for _, st := range s.Steps {
		t0 := time.Now()
		fmt.Fprintf(out, "%7.2fs  %-4d %s\n", time.Since(r.start).Seconds(), st.Line, st.Text)
		msg, err := r.step(ctx, st)
		took := time.Since(t0)
		if err != nil {
			fmt.Fprintf(out, "         FAIL %s (%.2fs)\n", err, took.Seconds())
			return fmt.Errorf("%s:%d: %s: %w", s.Name, st.Line, st.Text, err)
		}
		if msg != "" {
			fmt.Fprintf(out, "         ok   %s (%.2fs)\n", msg, took.Seconds())
		}
	}
	fmt.Fprintf(out, "%7.2fs  script %s passed: %d steps\n", time.Since(r.start).Seconds(), s.Name, len(s.Steps))
	return nil
}

func (r *runner) step(ctx context.Context, st Step) (string, error) {
	switch st.Verb {
	case "nodes", "add":
		n, _ := strconv.Atoi(st.Args[0])
		if st.Verb == "nodes" {
			n -= r.live()
		}
		if n <= 0 {
			return fmt.Sprintf("%d nodes already running", r.live()), nil
		}
		added, err := r.l.AddNodes(ctx, n)
		names := make([]string, len(added))
		for i, p := range added {
			names[i] = p.Name
		}
		if err != nil {
			return "", err
		}
		return "started " + strings.Join(names, " "), nil
	case "wait", "expect":
		c, timeout, _ := st.condition()
		if st.Verb == "expect" {
			timeout = 0
		}
		var got string
		ok := Until(ctx, timeout, func() bool {
			var holds bool
			holds, got = r.check(ctx, c)
			return holds
		})
		if !ok {
			if st.Verb == "wait" {
				return "", fmt.Errorf("%s still false after %v: %s", c, timeout, got)
			}
			return "", fmt.Errorf("%s is false: %s", c, got)
		}
		return got, nil
	case "kill", "stop", "cut", "heal":
		p, how, err := r.target(ctx, st.Args[0])
		if err != nil {
			return "", err
		}
		if !p.Alive() {
			return "", fmt.Errorf("%s is not running", p.Name)
		}
		switch st.Verb {
		case "kill":
			p.Kill()
		case "stop":
			p.Stop(10 * time.Second)
		case "cut":
			if err := p.Cut(); err != nil {
				return "", err
			}
		case "heal":
			p.Heal()
		}
		return fmt.Sprintf("%s%s (pid %d)", p.Name, how, p.Pid()), nil
	case "restart":
		p, how, err := r.target(ctx, st.Args[0])
		if err != nil {
			return "", err
		}
		t0 := time.Now()
		np, err := r.l.Restart(p.Name)
		if err != nil {
			return "", err
		}
		if np.Ready.PeerID != p.Ready.PeerID {
			return "", fmt.Errorf("%s came back as %s, not %s: its identity was lost", p.Name, np.Ready.PeerID, p.Ready.PeerID)
		}
		return fmt.Sprintf("%s%s ready again in %.2fs with the same peer ID (pid %d)", p.Name, how, time.Since(t0).Seconds(), np.Pid()), nil
	case "search":
		return r.search(ctx, st)
	case "get":
		return r.get(ctx, st)
	case "status":
		o := r.l.Overlay(ctx)
		WriteOverlay(r.out, r.l, o)
		return fmt.Sprintf("%d supernodes, %d leaves, %d unattached", len(o.Supernodes()), len(o.Leaves()), len(o.Unattached())), nil
	case "sleep":
		d, _ := time.ParseDuration(st.Args[0])
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return "", nil
	case "echo":
		fmt.Fprintln(r.out, "         "+strings.Join(st.Args, " "))
		return "", nil
	}
	return "", fmt.Errorf("unknown step %q", st.Verb) // check refused it already
}

func (r *runner) live() int {
	n := 0
	for _, p := range r.l.Nodes() {
		if p.Alive() {
			n++
		}
	}
	return n
}

// target resolves a NODE argument; how says what "supernode" or "leaf"
// resolved to.
func (r *runner) target(ctx context.Context, name string) (*Proc, string, error) {
	if name != "supernode" && name != "leaf" {
		p, err := r.l.Node(name)
		return p, "", err
	}
	o := r.l.Overlay(ctx)
	pick := o.Supernodes()
	if name == "leaf" {
		pick = o.Leaves()
	}
	if len(pick) == 0 {
		return nil, "", fmt.Errorf("no live %s to pick", name)
	}
	p, err := r.l.Node(pick[0])
	return p, " (the " + name + ")", err
}

// check evaluates c now and describes what it saw.
func (r *runner) check(ctx context.Context, c cond) (bool, string) {
	if c.what == "hits" {
		return c.holds(len(r.hits)), fmt.Sprintf("%d hits", len(r.hits))
	}
	o := r.l.Overlay(ctx)
	sns, leaves, un := o.Supernodes(), o.Leaves(), o.Unattached()
	desc := fmt.Sprintf("supernodes [%s], %d leaves", strings.Join(sns, " "), len(leaves))
	if len(un) > 0 {
		desc += ", unattached [" + strings.Join(un, " ") + "]"
	}
	switch c.what {
	case "attached":
		return len(un) == 0 && len(sns) > 0, desc
	case "supernodes":
		return c.holds(len(sns)), desc
	case "leaves":
		return c.holds(len(leaves)), desc
	default: // nodes
		return c.holds(len(o.Status) + len(o.Errors)), fmt.Sprintf("%d live nodes; %s", len(o.Status)+len(o.Errors), desc)
	}
}

func (r *runner) search(ctx context.Context, st Step) (string, error) {
	p, how, err := r.target(ctx, st.Args[0])
	if err != nil {
		return "", err
	}
	opts, rest, _ := st.options(1, "expect", "timeout")
	timeout := 3 * time.Second
	if v, ok := opts["timeout"]; ok {
		timeout, _ = time.ParseDuration(v)
	}
	q := strings.Join(rest, " ")
	hits, err := p.Search(ctx, q, timeout)
	if err != nil {
		return "", err
	}
	r.hits, r.asker = hits, p.Name
	holders := map[proto.PeerID]bool{}
	for _, h := range hits {
		holders[h.Holder.ID] = true
	}
	msg := fmt.Sprintf("%s%s: %d hits from %d holders", p.Name, how, len(hits), len(holders))
	for i, h := range hits {
		if i == 3 {
			msg += fmt.Sprintf("\n              ... and %d more", len(hits)-3)
			break
		}
		msg += fmt.Sprintf("\n              %d. %s (%s, %d bytes, %d hops)", i+1, h.Entry.Name, r.nameOf(h.Holder.ID), h.Entry.Size, h.Hops)
	}
	if v, ok := opts["expect"]; ok {
		m := condRE.FindStringSubmatch("hits" + v)
		n, _ := strconv.Atoi(m[3])
		c := cond{what: "hits", op: m[2], n: n}
		if !c.holds(len(hits)) {
			return "", fmt.Errorf("%s%s: %d hits for %q, want %s", p.Name, how, len(hits), q, c)
		}
	}
	return msg, nil
}

// nameOf is the lab name of a peer ID, or the ID itself.
func (r *runner) nameOf(id proto.PeerID) string {
	for _, p := range r.l.Nodes() {
		if p.Ready.PeerID == id {
			return p.Name
		}
	}
	return id.String()
}

func (r *runner) get(ctx context.Context, st Step) (string, error) {
	p, how, err := r.target(ctx, st.Args[0])
	if err != nil {
		return "", err
	}
	opts, rest, _ := st.options(1, "timeout")
	n := 1
	if len(rest) == 1 {
		n, _ = strconv.Atoi(rest[0])
	}
	timeout := 60 * time.Second
	if v, ok := opts["timeout"]; ok {
		timeout, _ = time.ParseDuration(v)
	}
	var others []proto.Hit
	for _, h := range r.hits {
		if h.Holder.ID != p.Ready.PeerID {
			others = append(others, h)
		}
	}
	if n > len(others) {
		return "", fmt.Errorf("the last search has %d hits held by nodes other than %s; no hit %d (run a search first)", len(others), p.Name, n)
	}
	h := others[n-1]
	gctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t0 := time.Now()
	d, err := p.Get(gctx, h.Entry.ContentID, h.Entry.Name)
	if err != nil {
		return "", err
	}
	secs := time.Since(t0).Seconds()
	return fmt.Sprintf("%s%s got %q (%d bytes) from %s in %.2fs (%.0f KB/s), content ID verified",
		p.Name, how, d.Name, d.Size, r.nameOf(h.Holder.ID), secs, float64(d.Size)/1000/secs), nil
}
