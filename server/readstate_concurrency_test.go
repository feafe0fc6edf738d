package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald/pkg/redistest"
)

// TestUnreadCountsStayExactUnderConcurrentReadsAndDeliveries: 500
// deliveries and 500 reads, at once, through two nodes on one Redis. The
// counts both nodes answer are exact afterwards, and every count a live
// session was sent equals the unread notifications at the position it
// names, as the session itself folds them from the frames it received.
func TestUnreadCountsStayExactUnderConcurrentReadsAndDeliveries(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 operations on Redis")
	}
	rs := redistest.Start(t)
	use := func(c *configT) { c.RedisURL, c.HistoryMaxCount, c.MarkRate = rs.URL(), 5000, 0 }
	nodes := []*testNode{startNode(t, use), startNode(t, use)}
	const n = 500
	tok := mintToken(t, "alice")

	ws := nodes[1].mustDialWS("alice", "")
	nodes[1].waitOnline("alice")
	frames := make(chan []byte, 4*n)
	go func() {
		defer close(frames)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			_, data, err := ws.c.Read(ctx)
			cancel()
			if err != nil {
				return
			}
			frames <- data
		}
	}()

	// The notifications to be read, then the reads and new deliveries
	// interleaved over both nodes.
	old := make([]string, n)
	run(t, n, func(i int) error {
		status, body := nodes[i%2].send(map[string]any{"to": []string{"alice"}, "title": fmt.Sprint("old ", i)})
		var r sendResponse
		if status != http.StatusAccepted || json.Unmarshal(body, &r) != nil || len(r.Notifications) != 1 {
			return fmt.Errorf("send: %d %s", status, body)
		}
		old[i] = r.Notifications[0].ID
		return nil
	})
	wantTags := map[string]int{}
	for i := 0; i < n; i++ {
		wantTags[fmt.Sprint("t", i%7)]++
	}
	run(t, 2*n, func(i int) error {
		node := nodes[(i/2)%2]
		if i%2 == 0 {
			status, body := node.send(map[string]any{"to": []string{"alice"}, "title": fmt.Sprint("new ", i), "tag": fmt.Sprint("t", (i/2)%7)})
			if status != http.StatusAccepted {
				return fmt.Errorf("send: %d %s", status, body)
			}
			return nil
		}
		path, bearer := "/v1/read", tok
		if (i/2)%3 == 0 {
			path, bearer = "/v1/users/alice/read", testAPIKey
		}
		if status, body := node.do(http.MethodPost, path, bearer, map[string]any{"ids": []string{old[i/2]}}); status != http.StatusOK {
			return fmt.Errorf("read: %d %s", status, body)
		}
		return nil
	})

	for _, node := range nodes {
		if total, tags := node.unread("alice"); total != n || !maps.Equal(tags, wantTags) {
			t.Fatalf("unread on a node: %d %v, want %d %v", total, tags, n, wantTags)
		}
	}

	// The session's own fold: the unread ids after each event, by cursor.
	unread := map[string]bool{}
	after := map[string]int{}
	counts, reads, notes := 0, 0, 0
	var last int
	for counts < n || notes < 2*n {
		var data []byte
		select {
		case d, ok := <-frames:
			if !ok {
				t.Fatalf("session ended after %d notifications, %d reads, %d counts", notes, reads, counts)
			}
			data = d
		case <-time.After(30 * time.Second):
			t.Fatalf("session stalled after %d notifications, %d reads, %d counts", notes, reads, counts)
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatal(err)
		}
		switch f.Type {
		case "notification":
			notes++
			unread[f.Notification.ID] = true
			after[f.Notification.Cursor] = len(unread)
		case "read":
			reads++
			for _, id := range f.IDs {
				delete(unread, id)
			}
			after[f.Cursor] = len(unread)
		case "unread":
			counts++
			want, ok := after[f.AsOf]
			if !ok {
				t.Fatalf("counts as of %s, a position the session never saw", f.AsOf)
			}
			if f.Total != want {
				t.Fatalf("counts as of %s: %d, the session folds %d", f.AsOf, f.Total, want)
			}
			last = f.Total
		}
	}
	if reads != n || len(unread) != n {
		t.Fatalf("session saw %d reads and folds %d unread, want %d and %d (last count %d)", reads, len(unread), n, n, last)
	}
	_ = ws.c.Close(websocket.StatusNormalClosure, "")
}

// run calls op(0..count-1) from 16 goroutines and fails on the first error.
func run(t *testing.T, count int, op func(i int) error) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan int)
	)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := op(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < count; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}
