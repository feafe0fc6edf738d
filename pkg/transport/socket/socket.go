// Package socket writes a live connection's prebuilt frames: several in
// one system call, without waiting when the hub's writer pool asks, and
// keeping what a full socket did not take for the next write.
package socket

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Writer writes a live connection's frames: without waiting when the
// hub's writer pool asks (the socket takes them now, or the rest is kept),
// and with a deadline otherwise, sending what a partial write left first.
// Its owner serializes the calls.
type Writer struct {
	conn     net.Conn
	raw      syscall.RawConn // nil when the connection is not a plain socket (TLS)
	rest     []byte          // what a write without waiting left unsent
	deadline int64           // the write deadline kept by setDeadline, Unix ns

	// The raw write's arguments and results, beside a callback made once,
	// so that a write allocates nothing.
	bufs   [][]byte
	n      int
	errno  error
	callFD func(fd uintptr) bool
}

func New(conn net.Conn) Writer {
	w := Writer{conn: conn}
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			w.raw = raw
		}
	}
	return w
}

// CanTry reports whether tryWrite can write without waiting.
func (w *Writer) CanTry() bool { return w.raw != nil }

// TryWrite writes bufs, in order, as far as the socket takes them now and
// reports whether it took them all; what it did not take is kept for the
// next write. It requires CanTry.
func (w *Writer) TryWrite(bufs [][]byte) (all bool, err error) {
	if len(w.rest) > 0 {
		w.keep(bufs, 0)
		return false, nil
	}
	if w.callFD == nil {
		w.callFD = w.writeFD
	}
	w.bufs = bufs
	err = w.raw.Write(w.callFD)
	n, errno := w.n, w.errno
	w.bufs, w.errno = nil, nil
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			w.keep(bufs, 0)
			return false, nil
		}
		return false, err
	}
	switch {
	case errno == nil:
	case errors.Is(errno, syscall.EAGAIN) || errors.Is(errno, syscall.EINTR):
		n = 0
	default:
		return false, errno
	}
	if n == size(bufs) {
		return true, nil
	}
	w.keep(bufs, n)
	return false, nil
}

// writeFD is the raw write: one system call that never waits.
func (w *Writer) writeFD(fd uintptr) bool {
	if len(w.bufs) == 1 {
		w.n, w.errno = syscall.Write(int(fd), w.bufs[0])
	} else {
		w.n, w.errno = unix.Writev(int(fd), w.bufs)
	}
	return true
}

// keep saves what is left of bufs after the first n bytes.
func (w *Writer) keep(bufs [][]byte, n int) {
	for _, b := range bufs {
		if n >= len(b) {
			n -= len(b)
			continue
		}
		w.rest = append(w.rest, b[n:]...)
		n = 0
	}
}

func size(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

// Write sends what an earlier write left, then bufs, by deadline.
func (w *Writer) Write(deadline time.Time, bufs ...[]byte) error {
	if err := w.setDeadline(deadline); err != nil {
		return err
	}
	if w.raw != nil {
		// Writes without waiting fail once a deadline passed; this one is
		// for this write only.
		defer w.conn.SetWriteDeadline(time.Time{})
		w.deadline = 0
	}
	if len(w.rest) > 0 {
		if _, err := w.conn.Write(w.rest); err != nil {
			return err
		}
		w.rest = nil
	}
	var err error
	switch len(bufs) {
	case 0:
	case 1:
		_, err = w.conn.Write(bufs[0])
	default:
		nb := net.Buffers(bufs)
		_, err = nb.WriteTo(w.conn)
	}
	return err
}

// setDeadline gives the next write a deadline no later than d. On a
// connection written only this way, a busy one keeps one deadline for a
// while (no earlier than halfway to d) rather than a timer update per
// write.
func (w *Writer) setDeadline(d time.Time) error {
	now := time.Now().UnixNano()
	end := d.UnixNano()
	if w.raw == nil && w.deadline <= end && w.deadline >= now+(end-now)/2 {
		return nil
	}
	if err := w.conn.SetWriteDeadline(d); err != nil {
		return err
	}
	w.deadline = end
	return nil
}
