// Package peerwatch notices when the peer of a connection nobody reads from
// hangs up. Hijacked event streams are written to but never read, so
// without it a closed browser tab would only be found by the next failed
// heartbeat. One goroutine waits on an epoll set for every watched
// connection (Linux); elsewhere Watch reports ErrUnsupported and callers
// rely on write failures.
package peerwatch

import "errors"

// ErrUnsupported is returned where the platform has no watcher.
var ErrUnsupported = errors.New("peerwatch: unsupported platform")

// ErrClosed is returned by Watch after Close.
var ErrClosed = errors.New("peerwatch: closed")
