package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-lab-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "strata")
	build := exec.Command("go", "build", "-o", binary, "github.com/strata-p2p/strata/cmd/strata")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building strata:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestScript runs a short experiment against real processes: a network of
// five forms with two supernodes, a leaf finds and downloads a file held
// elsewhere (verified), a killed supernode's leaves re-attach and search
// again, and a frozen node is reported as cut. Then the lab cleans up.
func TestScript(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six processes")
	}
	src := `# a test experiment
nodes 5
wait supernodes>=2 30s
wait attached 30s
search leaf beatles expect>=2 timeout 2s
get leaf 1 timeout 60s
kill supernode
wait attached 30s
expect nodes=4
search leaf "beatles" expect >= 1 timeout=2s
expect hits>=1
cut node5
expect nodes=3
heal node5
restart node2
wait attached 30s
`
	s, err := ParseScript("test.lab", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(Config{Binary: binary, Seed: 1, Dir: t.TempDir(), Heartbeat: 250 * time.Millisecond,
		Rescan: 200 * time.Millisecond, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := l.Start(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	runErr := s.Run(ctx, l, &out)
	t.Logf("script output:\n%s", out.String())
	if runErr != nil {
		for _, p := range append(l.Nodes(), l.Bootstrap) {
			t.Logf("---- %s ----\n%s", p.Name, tail(p.Log, 30))
		}
		t.Fatal(runErr)
	}
	for _, want := range []string{"content ID verified", "(the supernode)", "with the same peer ID", "passed: 15 steps"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	procs := append(l.Nodes(), l.Bootstrap)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if p.Alive() {
			t.Errorf("%s still running after Close", p.Name)
		}
	}
	if _, err := os.Stat(l.Dir()); !os.IsNotExist(err) {
		t.Errorf("lab folder %s not removed: %v", l.Dir(), err)
	}
}

// TestScriptFailure: a failed expectation is an error naming the line.
func TestScriptFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	s, err := ParseScript("f.lab", strings.NewReader("nodes 1\nwait attached 30s\n\nsearch node1 zzqqxxnothing expect>=1 timeout 500ms\necho never\n"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(Config{Binary: binary, Dir: t.TempDir(), Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if err := l.Start(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = s.Run(ctx, l, &out)
	if err == nil || !strings.HasPrefix(err.Error(), "f.lab:4: ") || !strings.Contains(err.Error(), "0 hits") {
		t.Fatalf("Run = %v; want a failure at f.lab:4 with 0 hits\n%s", err, out.String())
	}
	if strings.Contains(out.String(), "never") {
		t.Error("the script went on after a failed step")
	}
}

func TestParseScriptErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"nodes 3\n\n# comment\nfly node1\n", `s.lab:4: unknown step "fly"`},
		{"nodes many\n", `s.lab:1: nodes: "many" is not a number`},
		{"nodes 2\nwait supernodes~2\n", `s.lab:2: wait: "supernodes~2" is not a condition`},
		{"wait peers>=2 5s\n", `s.lab:1: wait: unknown "peers"`},
		{"kill\n", "s.lab:1: kill: want kill NODE"},
		{`search node1 "open quote` + "\n", `s.lab:1: unclosed "`},
		{"search node1 x expect>=z\n", `s.lab:1: search: expect ">=z"`},
		{"search node1 x timeout=never\n", `s.lab:1: search: timeout "never"`},
		{"get node1 0\n", `s.lab:1: get: hit "0"`},
		{"sleep forever\n", `s.lab:1: sleep: "forever" is not a duration`},
		{"status now\n", "s.lab:1: status: want status"},
	} {
		_, err := ParseScript("s.lab", strings.NewReader(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseScript(%q) = %v; want %q", tc.src, err, tc.want)
		}
	}
	s, err := ParseScript("ok.lab", strings.NewReader("  # only comments\nnodes 2 # two\nsearch node1 \"come together\" expect >= 1 timeout 2s\nget node2 timeout=5s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Steps) != 3 || s.Steps[1].Line != 3 || s.Steps[1].Args[1] != "come together" {
		t.Fatalf("steps %+v", s.Steps)
	}
	opts, rest, err := s.Steps[1].options(1, "expect", "timeout")
	if err != nil || opts["expect"] != ">=1" || opts["timeout"] != "2s" || len(rest) != 1 {
		t.Fatalf("options = %v %v %v", opts, rest, err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Config.Binary is empty"},
		{Config{Binary: binary, Nodes: -1}, "ask for 1 to"},
		{Config{Binary: binary, BootstrapPort: 70000}, "--bootstrap-port 70000"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v; want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestPortInUse: a bootstrap port that is taken is refused with a way out.
func TestPortInUse(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	l, err := New(Config{Binary: binary, BootstrapPort: port, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = l.Start(context.Background(), 1)
	if err == nil || !strings.Contains(err.Error(), "is in use") || !strings.Contains(err.Error(), "--bootstrap-port") {
		t.Fatalf("Start = %v; want a port-in-use error naming --bootstrap-port", err)
	}
}

func TestDiskError(t *testing.T) {
	err := diskError(&os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC})
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "--dir") {
		t.Fatalf("diskError = %v", err)
	}
}

// TestShippedScripts: the example scripts in docs/lab parse.
func TestShippedScripts(t *testing.T) {
	files, err := filepath.Glob("../../docs/lab/*.lab")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in docs/lab: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseScript(f, bytes.NewReader(b)); err != nil {
			t.Error(err)
		}
	}
}

// TestNoRoom: a lab folder on a nearly full file system (a 4 MiB tmpfs)
// is refused before anything is written, saying what to do. It needs root
// to mount the tmpfs.
func TestNoRoom(t *testing.T) {
	dir := t.TempDir()
	if err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).Run(); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	_, err := New(Config{Binary: binary, Nodes: 3, Dir: dir})
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "--dir") || !strings.Contains(err.Error(), "fewer --nodes") {
		t.Fatalf("New on a full disk = %v; want ErrNoSpace saying what to do", err)
	}
	// A disk that fills up while the share folder is written.
	var ferr error
	for i := 0; i < 10 && ferr == nil; i++ {
		_, ferr = fillShare(filepath.Join(dir, fmt.Sprint("share", i)), i, 1)
	}
	if !errors.Is(ferr, ErrNoSpace) || !strings.Contains(ferr.Error(), "--dir") {
		t.Fatalf("fillShare on a full disk = %v; want ErrNoSpace saying what to do", ferr)
	}
}
