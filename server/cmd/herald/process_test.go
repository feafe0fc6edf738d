package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestZeroConfigServeTokenSend(t *testing.T) {
	dir := t.TempDir()
	n := startProcess(t, "HERALD_DATA_DIR="+dir)
	waitUntil(t, "first-start banner", func() bool { return strings.Contains(n.out.String(), "API key:") })
	secrets, err := os.ReadFile(filepath.Join(dir, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sec struct {
		APIKey string `json:"api_key"`
	}
	_ = json.Unmarshal(secrets, &sec)
	if !strings.Contains(n.out.String(), sec.APIKey) {
		t.Fatal("API key not printed on first start")
	}
	tok, err := exec.Command(heraldBin, "token", "--user", "alice", "--data-dir", dir).Output()
	if err != nil {
		t.Fatalf("herald token: %v", err)
	}
	resp, err := http.Get(n.base + "/v1/sse?token=" + strings.TrimSpace(string(tok)))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("sse with minted token: %v %v", err, resp)
	}
	defer resp.Body.Close()
	out, err := exec.Command(heraldBin, "send", "--server", n.base, "--data-dir", dir, "--to", "alice", "--title", "Hello", "--body", "tour").CombinedOutput()
	if err != nil {
		t.Fatalf("herald send: %v %s", err, out)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") && strings.Contains(sc.Text(), `"title":"Hello"`) {
			return
		}
	}
	t.Fatal("notification not received over SSE")
}

func TestSIGTERMClosesWebSocketsWith1012(t *testing.T) {
	n := startProcess(t, "HERALD_DATA_DIR="+t.TempDir(), "HERALD_JWT_SECRET="+procSecret, "HERALD_API_KEY="+procAPIKey)
	ch, _ := wsTitles(t, n.base, "alice")
	waitUntil(t, "session", func() bool { return presence(t, n.base, "alice") == 1 })
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	expect(t, ch, "close:1012")
	done := make(chan error, 1)
	go func() { done <- n.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, n.out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("did not exit after SIGTERM")
	}
}

// TestBenchDrivesANode runs the shipped load tool against a node, small.
func TestBenchDrivesANode(t *testing.T) {
	dir := t.TempDir()
	n := startProcess(t, "HERALD_DATA_DIR="+dir, "HERALD_JWT_SECRET="+procSecret, "HERALD_API_KEY="+procAPIKey)
	for _, args := range [][]string{
		{"idle", "--transport", "sse", "--sessions", "20", "--pid", fmt.Sprint(n.cmd.Process.Pid)},
		{"unicast", "--transport", "ws", "--sessions", "20", "--messages", "400", "--rate", "500", "--pid", fmt.Sprint(n.cmd.Process.Pid)},
		{"unicast", "--transport", "sse", "--sessions", "20", "--messages", "200"},
		{"fanout", "--transport", "ws", "--sessions", "20", "--rounds", "3"},
		{"read", "--transport", "ws", "--sessions", "20", "--reads", "60", "--pid", fmt.Sprint(n.cmd.Process.Pid)},
	} {
		cmd := exec.Command(heraldBin, append(append([]string{"bench"}, args...),
			"--server", n.base, "--api-key", procAPIKey, "--jwt-secret", procSecret, "--timeout", "60s")...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bench %v: %v", args, err)
		}
		var res struct {
			Scenario   string
			Sent       int
			Delivered  int
			Sessions   int
			Incomplete int `json:"incomplete_rounds"`
			Rounds     int
			Reads      int
			Errors     int
			CPU        struct {
				Server float64 `json:"server_us_per_op"`
				Tool   float64 `json:"tool_us_per_op"`
			}
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("bench %v printed %q: %v", args, out, err)
		}
		if res.Scenario != args[0] || res.Sent != res.Delivered || res.Incomplete != 0 || res.Errors != 0 || (args[0] == "read" && res.Reads != 60) {
			t.Fatalf("bench %v: %+v", args, res)
		}
		// Idle reports memory; the others the tool's CPU per operation,
		// and the server's when given its PID.
		withPID := slices.Contains(args, "--pid")
		if args[0] != "idle" && (res.CPU.Tool <= 0 || (res.CPU.Server > 0) != withPID) {
			t.Fatalf("bench %v: CPU per operation %+v", args, res.CPU)
		}
	}
}

// TestEmbeddedNodeLosesNothingAcrossAKill: notifications stored before a
// SIGKILL are replayed after the restart to a client resuming from its
// cursor, in order, followed by new ones.
func TestEmbeddedNodeLosesNothingAcrossAKill(t *testing.T) {
	dir := t.TempDir()
	env := []string{"HERALD_DATA_DIR=" + dir, "HERALD_JWT_SECRET=" + procSecret, "HERALD_API_KEY=" + procAPIKey}
	n := startProcess(t, env...)
	ch, _ := wsTitles(t, n.base, "alice")
	waitUntil(t, "session", func() bool { return presence(t, n.base, "alice") == 1 })
	sendVia(t, n.base, procAPIKey, []string{"alice"}, "seen")
	expect(t, ch, "notification:seen")
	cursor := inboxCursor(t, n.base, "alice")
	for i := 0; i < 3; i++ {
		sendVia(t, n.base, procAPIKey, []string{"alice"}, fmt.Sprint("missed", i))
	}
	n.kill()

	n = startProcess(t, env...)
	sendVia(t, n.base, procAPIKey, []string{"alice"}, "after restart")
	resumed, _ := wsTitlesSince(t, n.base, "alice", cursor)
	for _, want := range []string{"missed0", "missed1", "missed2", "after restart"} {
		expect(t, resumed, "notification:"+want)
	}
}
