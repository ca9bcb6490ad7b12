//go:build linux

package transfer

import (
	"errors"
	"math"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Direct writes go through Linux native AIO, and their completions are
// awaited through an eventfd in the Go netpoller. A plain pwritev to an
// O_DIRECT file blocks its thread for the whole disk write (milliseconds
// for a batch of pieces), and the Go runtime leaves that thread's P idle
// until sysmon notices, which can take longer than the write: on a 2-core
// machine an execution trace of the 1 GiB download showed a goroutine
// runnable, a core free and only a blocked disk write holding the other P
// for about a fifth of the download. With AIO the writer parks like a
// network read, and io_submit only queues the write.

const (
	iocbCmdPwritev = 8      // IOCB_CMD_PWRITEV
	iocbFlagResfd  = 1 << 0 // IOCB_FLAG_RESFD: signal aio.evfd on completion
	aioSlots       = 64     // writes in flight per context, all downloads of a Manager (2 a source); beyond, writes block
)

// iocb is struct iocb of linux/aio_abi.h. aio_key and aio_rw_flags swap
// places on big-endian machines; both are zero here.
type iocb struct {
	data   uint64
	_      uint32 // aio_key
	_      int32  // aio_rw_flags
	opcode uint16
	_      int16 // aio_reqprio
	fildes uint32
	buf    uint64
	nbytes uint64
	offset int64
	_      uint64 // aio_reserved2
	flags  uint32
	resfd  uint32
}

// ioEvent is struct io_event.
type ioEvent struct {
	data uint64
	_    uint64 // obj: the iocb's address
	res  int64
	_    int64 // res2
}

// errAIOClosed and errAIOBusy send a write to the blocking path: the
// context is gone (Close, or its reaper failed), or it has no free slot
// (every download of a Manager shares aioSlots).
var (
	errAIOClosed = errors.New("asynchronous writes stopped")
	errAIOBusy   = errors.New("asynchronous writes all in flight")
)

// resClosed is what a waiter gets when the context is torn down before
// its completion was reaped; io_destroy has waited for the write by then,
// so its buffers are free, and it is written again synchronously.
const resClosed = math.MinInt64

// aio is one AIO context and the goroutine that reaps its completions.
type aio struct {
	ctx  uintptr
	evfd int      // the eventfd's number, for iocb.resfd (ev.Fd would make it blocking)
	ev   *os.File // the same eventfd, read through the netpoller
	done chan struct{}

	// live is held shared from the check of dead through io_submit, and
	// exclusively to destroy the context, so nothing is submitted to a
	// destroyed context (or one whose number was reused).
	live sync.RWMutex
	dead bool

	mu    sync.Mutex
	next  uint64
	waits map[uint64]chan int64
}

// newAIO sets up a context, or fails where the kernel or a seccomp filter
// does not allow AIO; callers then write synchronously.
func newAIO() (*aio, error) {
	var ctx uintptr
	if _, _, e := unix.Syscall(unix.SYS_IO_SETUP, aioSlots, uintptr(unsafe.Pointer(&ctx)), 0); e != 0 {
		return nil, e
	}
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_, _, _ = unix.Syscall(unix.SYS_IO_DESTROY, ctx, 0, 0)
		return nil, err
	}
	a := &aio{ctx: ctx, evfd: fd, ev: os.NewFile(uintptr(fd), "aio-eventfd"), done: make(chan struct{}),
		waits: map[uint64]chan int64{}}
	go a.reap()
	return a, nil
}

// pwritev writes iovs at off in fd and waits for the disk without holding
// a thread. It returns the bytes written, which may be fewer than asked.
func (a *aio) pwritev(fd int, iovs [][]byte, off int64) (int, error) {
	vec := make([]unix.Iovec, 0, len(iovs))
	for _, b := range iovs {
		if len(b) > 0 {
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			vec = append(vec, v)
		}
	}
	if len(vec) == 0 {
		return 0, nil
	}
	// The iocb carries the iovec array's address as an integer: pin the
	// array (which also keeps it off the stack) until io_submit has copied it.
	var pin runtime.Pinner
	pin.Pin(&vec[0])
	defer pin.Unpin()
	ch := make(chan int64, 1)
	a.mu.Lock()
	a.next++
	id := a.next
	a.waits[id] = ch
	a.mu.Unlock()
	cb := &iocb{data: id, opcode: iocbCmdPwritev, fildes: uint32(fd), buf: uint64(uintptr(unsafe.Pointer(&vec[0]))),
		nbytes: uint64(len(vec)), offset: off, flags: iocbFlagResfd, resfd: uint32(a.evfd)}
	cbs := [1]*iocb{cb}
	var n uintptr
	e := syscall.Errno(0)
	a.live.RLock()
	dead := a.dead
	for !dead {
		n, _, e = unix.Syscall(unix.SYS_IO_SUBMIT, a.ctx, 1, uintptr(unsafe.Pointer(&cbs[0])))
		if e != syscall.EINTR {
			break
		}
	}
	a.live.RUnlock()
	// The kernel copied the iocb and the iovec array during io_submit; the
	// buffers themselves stay mapped until the completion (the caller waits).
	runtime.KeepAlive(cb)
	if dead || e != 0 || n != 1 {
		a.mu.Lock()
		delete(a.waits, id)
		a.mu.Unlock()
		switch {
		case dead:
			return 0, errAIOClosed
		case e == syscall.EAGAIN || e == 0:
			return 0, errAIOBusy
		}
		return 0, e
	}
	res := <-ch
	switch {
	case res == resClosed:
		return 0, errAIOClosed
	case res < 0:
		return 0, syscall.Errno(-res)
	}
	return int(res), nil
}

// reap hands each completion to its waiter. The eventfd counts
// completions already in the ring, so after each read every event is
// collected without waiting. When the eventfd is closed (close) or a
// call fails, it destroys the context, which waits for every write in
// flight, and sends the writes not yet reaped back to be written again.
func (a *aio) reap() {
	defer close(a.done)
	defer a.destroy()
	var count [8]byte
	events := make([]ioEvent, 16)
	var zero unix.Timespec
	for {
		if _, err := a.ev.Read(count[:]); err != nil {
			return
		}
		for {
			n, _, e := unix.Syscall6(unix.SYS_IO_GETEVENTS, a.ctx, 0, uintptr(len(events)),
				uintptr(unsafe.Pointer(&events[0])), uintptr(unsafe.Pointer(&zero)), 0)
			if e == syscall.EINTR {
				continue
			}
			if e != 0 {
				return
			}
			a.mu.Lock()
			for _, ev := range events[:n] {
				if ch, ok := a.waits[ev.data]; ok {
					delete(a.waits, ev.data)
					ch <- ev.res
				}
			}
			a.mu.Unlock()
			if int(n) < len(events) {
				break
			}
		}
	}
}

// destroy frees the context once no submission is under way, then fails
// every write still waiting with resClosed.
func (a *aio) destroy() {
	a.live.Lock()
	a.dead = true
	_, _, _ = unix.Syscall(unix.SYS_IO_DESTROY, a.ctx, 0, 0)
	a.live.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, ch := range a.waits {
		delete(a.waits, id)
		ch <- resClosed
	}
}

// close refuses new writes, waits for submissions under way (so none
// names a closed or reused eventfd), then ends the reaper, which frees the
// context. Writes still waiting are written again synchronously.
func (a *aio) close() {
	a.live.Lock()
	a.dead = true
	a.live.Unlock()
	_ = a.ev.Close()
	<-a.done
}
