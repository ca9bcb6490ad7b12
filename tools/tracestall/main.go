// Command tracestall reads a Go execution trace (go test -trace) and says
// how the program used the machine's cores inside the windows the
// benchmark marks with trace.Log(ctx, "bench", "start") and "end": for how
// long a goroutine was runnable while a core was free of CPU work because
// the only goroutines holding Ps were blocked in a system call that is not
// CPU work (a disk write, an fsync), and which call that was. The Go
// runtime leaves a P with a thread blocked in a system call until sysmon
// retakes it, which on a 2-core machine can idle a core for the whole call.
//
//	go test -c -o t.test ./internal/transfer
//	./t.test -test.run '^$' -test.bench 'BenchmarkTransfer1GiB/impl=strata$' -test.benchtime 1x -test.trace t.trace
//	go run ./tools/tracestall -cores 2 t.trace
//
// Network system calls (quic-go's sendmsg and recvmmsg) count as CPU work:
// they copy packets in the kernel and return without waiting. Every other
// call counts as waiting, so a file read served from the page cache (the
// uploader's pread, the baseline's read) shows up here although it copies
// on the CPU: compare such lines between the implementations, not with 0.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"golang.org/x/exp/trace"
)

func main() {
	cores := flag.Int("cores", 2, "cores of the machine the trace was taken on")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: tracestall [-cores N] TRACE")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracestall:", err)
		os.Exit(1)
	}
	defer f.Close()
	r, err := trace.NewReader(f)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tracestall: %s is not a Go execution trace: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
	var (
		running  = map[trace.GoID]bool{}
		runnable = map[trace.GoID]bool{}
		syscall  = map[trace.GoID]string{} // goroutine -> the function that made the call
		on       bool
		last     trace.Time
		total    float64
		busy     float64                // ms-cores of CPU work (running or in a network call)
		stalled  = map[string]float64{} // ms a goroutine waited with a core free, by blocking call
	)
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "tracestall: reading the trace:", err)
			os.Exit(1)
		}
		t := ev.Time()
		if on {
			d := float64(t-last) / 1e6
			cpu, blocking := len(running), ""
			for _, fn := range syscall {
				if isNetwork(fn) {
					cpu++
				} else {
					blocking = fn
				}
			}
			total += d
			busy += d * float64(min(cpu, *cores))
			if cpu < *cores && len(runnable) > 0 {
				stalled[blocking] += d
			}
		}
		last = t
		if ev.Kind() == trace.EventLog && ev.Log().Category == "bench" {
			on = ev.Log().Message == "start"
			continue
		}
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		g := st.Resource.Goroutine()
		_, to := st.Goroutine()
		delete(running, g)
		delete(runnable, g)
		delete(syscall, g)
		switch to {
		case trace.GoRunning:
			running[g] = true
		case trace.GoRunnable:
			runnable[g] = true
		case trace.GoSyscall:
			syscall[g] = caller(st.Stack)
		}
	}
	if total == 0 {
		fmt.Fprintln(os.Stderr, `tracestall: no window marked with trace.Log(ctx, "bench", "start") and "end" in the trace`)
		os.Exit(1)
	}
	fmt.Printf("marked windows: %.0f ms; cores busy on average: %.2f of %d\n", total, busy/total, *cores)
	fmt.Println("runnable goroutine waiting while a core was free, by the non-CPU system call holding a P:")
	keys := make([]string, 0, len(stalled))
	for k := range stalled {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return stalled[keys[i]] > stalled[keys[j]] })
	for _, k := range keys {
		if stalled[k] < 1 {
			continue
		}
		name := k
		if name == "" {
			name = "(none: scheduling latency)"
		}
		fmt.Printf("  %7.0f ms  %4.1f%%  %s\n", stalled[k], 100*stalled[k]/total, name)
	}
}

// caller is the innermost function of the stack outside the runtime and
// the syscall packages: who made the call.
func caller(s trace.Stack) string {
	name := "?"
	for fr := range s.Frames() {
		fn := fr.Func
		if strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "syscall.") || strings.HasPrefix(fn, "internal/") ||
			strings.HasPrefix(fn, "golang.org/x/sys/") || strings.HasPrefix(fn, "os.") {
			continue
		}
		name = fn
		break
	}
	return name
}

// isNetwork says whether a call made by fn is quic-go's packet I/O.
func isNetwork(fn string) bool {
	return strings.Contains(fn, "golang.org/x/net/") || strings.Contains(fn, "quic-go") || strings.HasPrefix(fn, "net.")
}
