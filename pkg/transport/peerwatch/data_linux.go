//go:build linux

package peerwatch

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// dataOf points at the 64-bit user data of an epoll event. unix.EpollEvent
// splits it into Fd and Pad (and, on some architectures, a leading pad);
// the data always ends the struct.
func dataOf(ev *unix.EpollEvent) unsafe.Pointer {
	return unsafe.Add(unsafe.Pointer(ev), unsafe.Sizeof(*ev)-8)
}
