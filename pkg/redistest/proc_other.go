//go:build !linux

package redistest

import "os/exec"

// startOwned starts cmd and reaps it in the background.
func startOwned(cmd *exec.Cmd, exited chan<- struct{}, waitErr *error) error {
	if err := cmd.Start(); err != nil {
		close(exited)
		return err
	}
	go func() {
		*waitErr = cmd.Wait()
		close(exited)
	}()
	return nil
}

// Pause is not supported here: it fails the test.
func (s *Server) Pause() { s.t.Fatal("redistest: Pause needs Linux") }

// Resume is not supported here: it fails the test.
func (s *Server) Resume() { s.t.Fatal("redistest: Resume needs Linux") }
