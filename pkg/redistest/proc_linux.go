package redistest

import (
	"os/exec"
	"runtime"
	"syscall"
)

// startOwned starts cmd so that it dies with the test binary, even when the
// binary is killed before its cleanups run (go test -timeout): the child
// gets SIGKILL when the thread that started it exits. That thread is held
// by a goroutine until the child has been reaped, so the signal never
// fires early.
func startOwned(cmd *exec.Cmd, exited chan<- struct{}, waitErr *error) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is not unlocked: the runtime ends it with this
		// goroutine, after the child is gone.
		if err := cmd.Start(); err != nil {
			started <- err
			close(exited)
			return
		}
		started <- nil
		*waitErr = cmd.Wait()
		close(exited)
	}()
	return <-started
}

// signal sends sig to the running process, if any.
func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		s.t.Fatalf("redistest: %s is not running", s.Addr())
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: signal %s: %v", s.Addr(), err)
	}
}

// Pause stops the server with SIGSTOP, as a stalled host would: it keeps
// its connections but answers nothing, a replica acknowledges nothing,
// until Resume.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }
