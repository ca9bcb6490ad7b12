package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-p2p/strata/internal/apiguard"
)

// apiClient talks to a node's or a bootstrap server's control API.
type apiClient struct {
	base string
	hc   *http.Client
}

func newAPIClient(cmd *cobra.Command) (*apiClient, error) {
	c, err := loadConfig(cmd)
	if err != nil {
		return nil, err
	}
	addr := c.String("api")
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("--api %q: want HOST:PORT", addr)
	}
	token, err := apiToken(c)
	if err != nil {
		return nil, err
	}
	return &apiClient{base: "http://" + addr, hc: &http.Client{Transport: apiTransport{token: token, rt: http.DefaultTransport}}}, nil
}

// apiToken is the bearer token to send: the api-token setting (flag,
// STRATA_API_TOKEN or config file), else the token a node or bootstrap
// server generated into the state directory (--state-dir or
// STRATA_STATE_DIR; by default the node's, then the bootstrap server's).
// "" when there is none: an API on loopback needs none.
func apiToken(c *config) (string, error) {
	if t := strings.TrimSpace(c.String("api-token")); t != "" {
		return t, nil
	}
	dirs := []string{c.String("state-dir")}
	if dirs[0] == "" {
		dirs = []string{defaultStateDir(), bootstrapDefaultStateDir()}
	}
	for _, d := range dirs {
		if t, err := apiguard.LoadToken(d); err != nil || t != "" {
			return t, err
		}
	}
	return "", nil
}

// apiTransport adds the bearer token to every request, and the JSON
// content type the API requires of every request that is not GET.
type apiTransport struct {
	token string
	rt    http.RoundTripper
}

func (t apiTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if t.token != "" {
		r.Header.Set("Authorization", "Bearer "+t.token)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get("Content-Type") == "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return t.rt.RoundTrip(r)
}

// get issues GET path?query and returns the response, turning connection
// failures and JSON error bodies into errors that say what to do.
func (a *apiClient) get(path string, q url.Values, timeout time.Duration) (*http.Response, error) {
	u := a.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	hc := *a.hc
	hc.Timeout = timeout
	resp, err := hc.Get(u)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the control API at %s (%v); is `strata node` running, and is --api right?", a.base, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		var e struct{ Error string }
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s", e.Error)
		}
		return nil, fmt.Errorf("%s from %s", resp.Status, u)
	}
	return resp, nil
}

// lines calls fn for every JSON line of r.
func lines(r io.Reader, fn func([]byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	return sc.Err()
}
