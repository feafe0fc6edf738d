//go:build linux

package peerwatch

import (
	"fmt"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Watcher watches connections for a peer hang-up.
type Watcher struct {
	epfd int

	mu      sync.Mutex
	next    uint32
	watches map[uint64]*watch // key: fd | generation<<32
	closed  bool
	done    chan struct{}
}

type watch struct {
	key     uint64
	fd      int
	onClose func()
}

// New starts a watcher and its goroutine.
func New() (*Watcher, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("peerwatch: epoll_create: %w", err)
	}
	w := &Watcher{epfd: epfd, watches: make(map[uint64]*watch), done: make(chan struct{})}
	go w.loop()
	return w, nil
}

// Watch calls onClose once, from the watcher's goroutine, when the peer of
// conn hangs up. The returned stop must be called before conn is closed;
// after stop returns, onClose is not called.
func (w *Watcher) Watch(conn net.Conn, onClose func()) (stop func(), err error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, ErrUnsupported
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("peerwatch: %w", err)
	}
	var fd int
	if err := raw.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return nil, fmt.Errorf("peerwatch: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, ErrClosed
	}
	w.next++
	// The generation in the key tells a stale event for a reused fd number
	// from one for the connection registered now.
	wt := &watch{key: uint64(uint32(fd)) | uint64(w.next)<<32, fd: fd, onClose: onClose}
	ev := unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR | unix.EPOLLONESHOT}
	*(*uint64)(dataOf(&ev)) = wt.key
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return nil, fmt.Errorf("peerwatch: epoll_ctl: %w", err)
	}
	w.watches[wt.key] = wt
	return func() { w.unwatch(wt) }, nil
}

func (w *Watcher) unwatch(wt *watch) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watches[wt.key] != wt {
		return
	}
	delete(w.watches, wt.key)
	_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, wt.fd, nil)
}

func (w *Watcher) loop() {
	defer close(w.done)
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(w.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return // the epoll fd was closed
		}
		for i := 0; i < n; i++ {
			key := *(*uint64)(dataOf(&events[i]))
			w.mu.Lock()
			wt := w.watches[key]
			if wt != nil {
				delete(w.watches, key)
				_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, wt.fd, nil)
			}
			closed := w.closed
			w.mu.Unlock()
			if closed {
				return
			}
			if wt != nil {
				wt.onClose()
			}
		}
	}
}

// Close stops the watcher; pending watches are dropped without callbacks.
func (w *Watcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.watches = nil
	w.mu.Unlock()
	// Closing the epoll fd does not wake epoll_wait; a self-pipe would, but
	// an eventfd added to the set is simpler.
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err == nil {
		ev := unix.EpollEvent{Events: unix.EPOLLIN}
		*(*uint64)(dataOf(&ev)) = ^uint64(0)
		_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, efd, &ev)
		_, _ = unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		<-w.done
		unix.Close(efd)
	}
	return unix.Close(w.epfd)
}
