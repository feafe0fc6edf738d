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
