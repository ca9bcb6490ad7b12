package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/strata-p2p/strata/proto"
)

// The lab talks to its nodes as any client does: through their control
// APIs (docs/API.md). These are the fields it reads.

// NodeStatus is the part of GET /v1/status the lab uses.
type NodeStatus struct {
	PeerID   proto.PeerID `json:"peer_id"`
	Role     string       `json:"role"`
	Attached *struct {
		Supernode proto.PeerInfo `json:"supernode"`
	} `json:"attached,omitempty"`
	Shares struct {
		Files int `json:"files"`
	} `json:"shares"`
	Supernode *struct {
		Leaves     []json.RawMessage `json:"leaves"`
		Neighbours []proto.PeerInfo  `json:"neighbours"`
		IndexFiles int               `json:"index_files"`
	} `json:"supernode,omitempty"`
}

// IsSupernode reports whether the node runs the supernode role.
func (s NodeStatus) IsSupernode() bool { return s.Supernode != nil }

// Download is the part of a download's status the lab uses.
type Download struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Size  uint64 `json:"size"`
	Done  uint64 `json:"done"`
	State string `json:"state"`
	Path  string `json:"path"`
	Error string `json:"error"`
}

var apiClient = &http.Client{Timeout: 70 * time.Second}

// Client talks to one node's control API at API (host:port), sending
// Token when it is set. Usable, when set, says why the node cannot answer
// (it has exited, it is frozen) before a request is tried.
type Client struct {
	Name   string
	API    string
	Token  string
	Usable func() error
	// Fetch, when set, copies a file from the node's file system (a
	// container's) to a local path Get can read back; nil means the node's
	// files are local.
	Fetch func(ctx context.Context, path string) (local string, err error)
}

// Client is p's API client.
func (p *Proc) Client() *Client {
	return &Client{Name: p.Name, API: p.Ready.API, Usable: p.usable}
}

// Status, Search and Get on a lab process go through its Client.
func (p *Proc) Status(ctx context.Context) (NodeStatus, error) { return p.Client().Status(ctx) }
func (p *Proc) Search(ctx context.Context, q string, timeout time.Duration) ([]proto.Hit, error) {
	return p.Client().Search(ctx, q, timeout)
}
func (p *Proc) Get(ctx context.Context, cid proto.ContentID, name string) (Download, error) {
	return p.Client().Get(ctx, cid, name)
}

// usable says why the node's API cannot answer, if it cannot.
func (p *Proc) usable() error {
	if p.Frozen() {
		return fmt.Errorf("%s is cut (frozen); heal it first", p.Name)
	}
	if !p.Alive() {
		return fmt.Errorf("%s: %w", p.Name, errExited)
	}
	return nil
}

func (c *Client) usable() error {
	if c.Usable == nil {
		return nil
	}
	return c.Usable()
}

func (c *Client) request(ctx context.Context, method, url string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return apiClient.Do(req)
}

func (c *Client) do(ctx context.Context, method, path string, body any, v any) error {
	if err := c.usable(); err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := c.request(ctx, method, "http://"+c.API+path, rd)
	if err != nil {
		return fmt.Errorf("%s API %s: %w", c.Name, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s", c.Name, path, e.Error)
		}
		return fmt.Errorf("%s %s: %s %s", c.Name, path, resp.Status, b)
	}
	if v == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Status reads the node's status.
func (c *Client) Status(ctx context.Context) (NodeStatus, error) {
	var st NodeStatus
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// StatusRaw reads the node's status as a JSON object, for fields the lab
// does not know (a feature's presence).
func (c *Client) StatusRaw(ctx context.Context) (map[string]json.RawMessage, error) {
	var st map[string]json.RawMessage
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// Shares lists the files the node shares.
func (c *Client) Shares(ctx context.Context) ([]proto.FileEntry, error) {
	var fs []proto.FileEntry
	err := c.do(ctx, http.MethodGet, "/v1/shares", nil, &fs)
	return fs, err
}

// Search runs a query through the node and returns the hits.
func (c *Client) Search(ctx context.Context, q string, timeout time.Duration) ([]proto.Hit, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	u := "http://" + c.API + "/v1/search?" + url.Values{"q": {q}, "timeout": {timeout.String()}}.Encode()
	resp, err := c.request(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("search on %s: %w", c.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("search on %s: %s %s", c.Name, resp.Status, bytes.TrimSpace(b))
	}
	var hits []proto.Hit
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev struct {
			Type  string     `json:"type"`
			Hit   *proto.Hit `json:"hit"`
			Error string     `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return hits, fmt.Errorf("search on %s: bad line %q: %w", c.Name, sc.Text(), err)
		}
		if ev.Hit != nil {
			hits = append(hits, *ev.Hit)
		}
		if ev.Type == "done" && ev.Error != "" && len(hits) == 0 {
			return nil, fmt.Errorf("search on %s: %s", c.Name, ev.Error)
		}
	}
	return hits, sc.Err()
}

// Get downloads cid through the node and waits until it is done, failed
// or ctx ends. A finished file is read back and its content ID recomputed,
// so a download the lab reports as done has been verified twice.
func (c *Client) Get(ctx context.Context, cid proto.ContentID, name string) (Download, error) {
	var d Download
	if err := c.do(ctx, http.MethodPost, "/v1/downloads", map[string]string{"content_id": cid.String(), "name": name}, &d); err != nil {
		return d, err
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for d.State != "done" {
		switch d.State {
		case "failed", "cancelled":
			return d, fmt.Errorf("download of %s on %s %s: %s", name, c.Name, d.State, d.Error)
		}
		select {
		case <-ctx.Done():
			return d, fmt.Errorf("download of %s on %s still %s (%d of %d bytes): %w", name, c.Name, d.State, d.Done, d.Size, ctx.Err())
		case <-t.C:
		}
		if err := c.do(ctx, http.MethodGet, "/v1/downloads/"+cid.String(), nil, &d); err != nil {
			return d, err
		}
	}
	path := d.Path
	if c.Fetch != nil {
		var err error
		if path, err = c.Fetch(ctx, d.Path); err != nil {
			return d, fmt.Errorf("copying the downloaded file %s from %s: %w", d.Path, c.Name, err)
		}
	}
	got, size, err := ContentIDOfFile(path)
	if err != nil {
		return d, fmt.Errorf("reading the downloaded file back: %w", err)
	}
	if got != cid {
		return d, fmt.Errorf("downloaded file %s (%d bytes) has content ID %s, not %s", d.Path, size, got, cid)
	}
	return d, nil
}

// ContentIDOfFile hashes a file the way shares and downloads do, and
// returns its content ID and size.
func ContentIDOfFile(path string) (proto.ContentID, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return proto.ContentID{}, 0, err
	}
	defer f.Close()
	var pieces []proto.PieceHash
	var size uint64
	buf := make([]byte, proto.PieceSize)
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			pieces = append(pieces, proto.HashPiece(buf[:n]))
			size += uint64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return proto.ContentID{}, 0, err
		}
	}
	return proto.ContentIDOf(size, pieces), size, nil
}

// Overlay is the lab's view of the network at one moment.
type Overlay struct {
	Status map[string]NodeStatus // by node name, for every node that answered
	Errors map[string]error      // nodes alive that did not answer
	// down is the peer IDs of the lab's nodes that have exited or are cut:
	// a leaf whose supernode is down is not attached, whatever it says
	// (it has not noticed yet).
	down map[proto.PeerID]bool
}

// attached reports whether st is a leaf attached to a supernode that is up.
func (o Overlay) attached(st NodeStatus) bool {
	return !st.IsSupernode() && st.Attached != nil && !o.down[st.Attached.Supernode.ID]
}

// Supernodes is the names of the nodes that are supernodes.
func (o Overlay) Supernodes() []string {
	var s []string
	for name, st := range o.Status {
		if st.IsSupernode() {
			s = append(s, name)
		}
	}
	return sortedNames(s)
}

// Leaves is the names of the nodes that are attached leaves.
func (o Overlay) Leaves() []string {
	var s []string
	for name, st := range o.Status {
		if o.attached(st) {
			s = append(s, name)
		}
	}
	return sortedNames(s)
}

// Unattached is the names of the live nodes that are neither a supernode nor
// attached to one.
func (o Overlay) Unattached() []string {
	var s []string
	for name, st := range o.Status {
		if !st.IsSupernode() && !o.attached(st) {
			s = append(s, name)
		}
	}
	for name := range o.Errors {
		s = append(s, name)
	}
	return sortedNames(s)
}

// Overlay reads every live, unfrozen node's status.
func (l *Lab) Overlay(ctx context.Context) Overlay {
	o := Overlay{Status: map[string]NodeStatus{}, Errors: map[string]error{}, down: map[proto.PeerID]bool{}}
	for _, p := range l.Nodes() {
		if !p.Alive() || p.Frozen() {
			o.down[p.Ready.PeerID] = true
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := p.Status(sctx)
		cancel()
		if err != nil {
			o.Errors[p.Name] = err
			continue
		}
		o.Status[p.Name] = st
	}
	return o
}

// WaitSettled waits until every live node is a supernode or attached to
// one, or d passes; it returns the last overlay seen either way.
func (l *Lab) WaitSettled(ctx context.Context, d time.Duration) (Overlay, bool) {
	var o Overlay
	ok := Until(ctx, d, func() bool {
		o = l.Overlay(ctx)
		return len(o.Unattached()) == 0 && len(o.Supernodes()) > 0
	})
	return o, ok
}

// Until polls cond every 100 ms until it holds (true), d passes or ctx
// ends (false).
func Until(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// sortedNames sorts node names by number (node2 before node10).
func sortedNames(s []string) []string {
	slices.SortFunc(s, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	return s
}

// Cancel cancels the node's download of cid.
func (c *Client) Cancel(ctx context.Context, cid proto.ContentID) error {
	return c.do(ctx, http.MethodDelete, "/v1/downloads/"+cid.String(), nil, nil)
}
