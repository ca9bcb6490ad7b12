package lab

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-p2p/strata/proto"
)

// Ready is a daemon's ready line:
// {"event":"ready","role":...,"peer_id":...,"quic":...,"api":...}.
type Ready struct {
	Event  string       `json:"event"`
	Role   string       `json:"role"`
	PeerID proto.PeerID `json:"peer_id"`
	QUIC   string       `json:"quic"`
	API    string       `json:"api"`
}

// Proc is one strata child process of the lab: the bootstrap server or a
// node. Its standard error goes to Log; its ready line is Ready.
type Proc struct {
	Name  string
	Dir   string // the process's folder: state/, and for a node share/ and downloads/
	Log   string // its log file
	Ready Ready
	// Profile is a node's capacity; zero for the bootstrap server.
	Profile Profile

	// How it was started, for Restart.
	binary    string
	env, args []string
	timeout   time.Duration

	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	// frozen is set while the process is stopped with SIGSTOP (a cut).
	frozen bool
	// exitErr is what Wait returned, once done is closed.
	exitErr error
}

// Profile is the capacity a node is given: the knobs of its measured
// capacity (the promotion engine reads GOMAXPROCS and the upload cap) and
// the leaves it takes as a supernode.
type Profile struct {
	CPUs      int    `json:"cpus"`       // GOMAXPROCS
	Upload    string `json:"max_upload"` // --max-upload-rate
	MaxLeaves int    `json:"max_leaves"` // --max-leaves
}

// startProc runs binary args... with stderr into dir/log and waits up to
// timeout for its ready line.
func startProc(binary, name, dir string, env, args []string, timeout time.Duration) (*Proc, error) {
	p := &Proc{Name: name, Dir: dir, Log: filepath.Join(dir, name+".log"), done: make(chan struct{}),
		binary: binary, env: env, args: args, timeout: timeout}
	logf, err := os.OpenFile(p.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, diskError(err)
	}
	defer logf.Close() // the child holds its own descriptor
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = env
	p.cmd.Stderr = logf
	p.cmd.SysProcAttr = childAttr()
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, binary, err)
	}
	readyc := make(chan Ready, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r Ready
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Event == "ready" {
				select {
				case readyc <- r:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	})
	go func() {
		wg.Wait() // the pipe must be drained before Wait closes it
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	select {
	case p.Ready = <-readyc:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready (%v):\n%s", name, p.exitErr, tail(p.Log, 15))
	case <-time.After(timeout):
		p.Kill()
		return nil, fmt.Errorf("%s not ready after %v; its log %s ends:\n%s", name, timeout, p.Log, tail(p.Log, 15))
	}
}

// restart stops p (SIGTERM) and starts it again with the same state
// folder and the same QUIC and API addresses, as a machine that reboots
// would come back.
func (p *Proc) restart() (*Proc, error) {
	p.Stop(10 * time.Second)
	args := slices.Clone(p.args)
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--listen":
			args[i+1] = p.Ready.QUIC
		case "--api":
			args[i+1] = p.Ready.API
		}
	}
	np, err := startProc(p.binary, p.Name, p.Dir, p.env, args, p.timeout)
	if err != nil {
		return nil, err
	}
	np.Profile = p.Profile
	return np, nil
}

// Alive reports whether the process is still running (frozen counts).
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Frozen reports whether the process is stopped by Cut.
func (p *Proc) Frozen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frozen && p.Alive()
}

// Pid is the process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Kill sends SIGKILL, as a crash or a pulled plug would, and waits.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM and waits up to grace, then kills.
func (p *Proc) Stop(grace time.Duration) {
	if !p.Alive() {
		return
	}
	p.Heal() // a stopped process cannot handle SIGTERM
	_ = terminate(p.cmd.Process)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
}

// Cut freezes the process with SIGSTOP: its sockets stay open but nothing
// is read or answered, so to its peers it is a node whose link went dead
// (packets are dropped rather than refused). Heal undoes it.
func (p *Proc) Cut() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := freeze(p.cmd.Process); err != nil {
		return fmt.Errorf("cut %s: %w", p.Name, err)
	}
	p.frozen = true
	return nil
}

// Heal resumes a process frozen by Cut (SIGCONT).
func (p *Proc) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen {
		_ = thaw(p.cmd.Process)
		p.frozen = false
	}
}

// ExitError is how the process ended, once it has.
func (p *Proc) ExitError() error {
	if p.Alive() {
		return nil
	}
	return p.exitErr
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// errExited is returned for an operation on a process that has ended.
var errExited = errors.New("not running")
