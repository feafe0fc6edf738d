//go:build !linux

package peerwatch

import "net"

// Watcher is unavailable on this platform.
type Watcher struct{}

// New reports ErrUnsupported.
func New() (*Watcher, error) { return nil, ErrUnsupported }

// Watch reports ErrUnsupported.
func (w *Watcher) Watch(net.Conn, func()) (func(), error) { return nil, ErrUnsupported }

// Close does nothing.
func (w *Watcher) Close() error { return nil }
