package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestAcceptedNotificationsSurviveAKillUnderLoad: the node is killed while
// senders keep it busy; every notification it accepted (202) is in the
// user's history after the restart, and each history has no gaps.
func TestAcceptedNotificationsSurviveAKillUnderLoad(t *testing.T) {
	dir := t.TempDir()
	env := []string{"HERALD_DATA_DIR=" + dir, "HERALD_JWT_SECRET=" + procSecret, "HERALD_API_KEY=" + procAPIKey}
	n := startProcess(t, env...)
	users := []string{"u0", "u1", "u2"}
	var mu sync.Mutex
	accepted := map[string]bool{} // titles
	loadUntilKilled(t, n, 300, func(w, i int) bool {
		title := fmt.Sprintf("w%d-%d", w, i)
		to := []string{users[i%len(users)]}
		if i%5 == 0 {
			to = users // a small fan-out now and then
		}
		if trySend(n.base, procAPIKey, to, title) != nil {
			return false
		}
		mu.Lock()
		accepted[title] = true
		mu.Unlock()
		return true
	})

	n = startProcess(t, env...)
	found := map[string]bool{}
	for _, user := range users {
		cursors := inbox(t, n.base, user)
		for i, c := range cursors {
			if want := fmt.Sprintf("-%d", i+1); !strings.HasSuffix(c.Cursor, want) {
				t.Fatalf("%s: history has a gap or a reordering at %d: %s", user, i, c.Cursor)
			}
			found[c.Title] = true
		}
	}
	for title := range accepted {
		if !found[title] {
			t.Errorf("accepted notification %s lost across the kill", title)
		}
	}
	t.Logf("%d accepted before the kill, all found after the restart", len(accepted))
}

// loadUntilKilled runs send(worker, i) on 8 workers until enough calls
// succeeded, then kills n while they are still sending (some requests die
// with it) and waits for the workers to stop.
func loadUntilKilled(t *testing.T, n *node, enough int64, send func(w, i int) bool) {
	t.Helper()
	var ok atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if send(w, i) {
					ok.Add(1)
				}
			}
		}()
	}
	waitUntil(t, "load before the kill", func() bool { return ok.Load() >= enough })
	n.kill()
	close(stop)
	wg.Wait()
}

type inboxEntry struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	Body   string `json:"body"`
	Cursor string `json:"cursor"`
}

// inbox reads a user's whole history, oldest first.
func inbox(t *testing.T, base, user string) []inboxEntry {
	t.Helper()
	var all []inboxEntry
	since := ""
	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/notifications?limit=500&since="+since, nil)
		req.Header.Set("Authorization", "Bearer "+userToken(t, user))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Notifications []inboxEntry `json:"notifications"`
			Cursor        string       `json:"cursor"`
			Reset         bool         `json:"reset"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || page.Reset {
			t.Fatalf("inbox of %s: %v reset=%v", user, err, page.Reset)
		}
		all = append(all, page.Notifications...)
		if len(page.Notifications) == 0 || page.Cursor == since {
			return all
		}
		since = page.Cursor
		if len(all) > 100000 {
			t.Fatal("inbox does not end")
		}
	}
}
