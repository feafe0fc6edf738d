// Package queuetest is the conformance suite every work queue passes.
package queuetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/queue"
)

// Queue is what the suite exercises: the one queue.Queue.
type Queue = queue.Queue

// New opens a fresh, empty queue with opts; a second call within one test
// may return another reader of the same queue (another node) or a new
// queue, as the implementation allows: the suite only uses one per test.
type New func(t *testing.T, opts queue.Options) Queue

// Run runs the suite.
func Run(t *testing.T, newQueue New) {
	opts := queue.Options{MaxAttempts: 3, RetryAfter: 150 * time.Millisecond, DedupeTTL: time.Hour}
	ctx := context.Background()

	t.Run("EnqueueReadAck", func(t *testing.T) {
		q := newQueue(t, opts)
		for i := range 3 {
			if dup, err := q.Enqueue(ctx, fmt.Sprint("k", i), []byte(fmt.Sprint("body", i))); err != nil || dup {
				t.Fatalf("enqueue %d: dup=%v err=%v", i, dup, err)
			}
		}
		// A partitioned queue keeps order within a partition only, and
		// keys choose partitions: compare the items sorted.
		items := readN(t, q, 3)
		slices.SortFunc(items, func(a, b queue.Item) int { return bytes.Compare(a.Body, b.Body) })
		for i, it := range items {
			if string(it.Body) != fmt.Sprint("body", i) || it.Attempts != 1 {
				t.Fatalf("item %d = %q attempts %d, want body%d attempts 1", i, it.Body, it.Attempts, i)
			}
			if it.Enqueued.IsZero() {
				t.Fatalf("item %d has no enqueue time", i)
			}
		}
		if depth, _, err := q.Stats(ctx); err != nil || depth != 3 {
			t.Fatalf("depth before ack = %d, %v; want 3", depth, err)
		}
		if err := q.Ack(ctx, items[0].ID, items[1].ID, items[2].ID); err != nil {
			t.Fatal(err)
		}
		if depth, _, err := q.Stats(ctx); err != nil || depth != 0 {
			t.Fatalf("depth after ack = %d, %v; want 0", depth, err)
		}
		if more, err := q.Read(ctx, 10, 50*time.Millisecond); err != nil || len(more) != 0 {
			t.Fatalf("read after ack = %d items, %v; want none", len(more), err)
		}
	})

	t.Run("DuplicateKeyIsNotQueued", func(t *testing.T) {
		q := newQueue(t, opts)
		if dup, err := q.Enqueue(ctx, "same", []byte("a")); err != nil || dup {
			t.Fatalf("first: dup=%v err=%v", dup, err)
		}
		if dup, err := q.Enqueue(ctx, "same", []byte("b")); err != nil || !dup {
			t.Fatalf("second: dup=%v err=%v, want dup", dup, err)
		}
		items := readN(t, q, 1)
		if string(items[0].Body) != "a" {
			t.Fatalf("body = %q", items[0].Body)
		}
		if more, _ := q.Read(ctx, 10, 50*time.Millisecond); len(more) != 0 {
			t.Fatalf("duplicate was queued: %d more items", len(more))
		}
	})

	t.Run("ReadersNeverShareAnItem", func(t *testing.T) {
		q := newQueue(t, opts)
		const n = 200
		for i := range n {
			if _, err := q.Enqueue(ctx, fmt.Sprint("k", i), []byte(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					items, err := q.Read(ctx, 7, 100*time.Millisecond)
					if err != nil {
						t.Error(err)
						return
					}
					if len(items) > 7 {
						t.Errorf("read %d items, asked for at most 7", len(items))
					}
					if len(items) == 0 {
						return
					}
					ids := make([]string, len(items))
					mu.Lock()
					for i, it := range items {
						seen[string(it.Body)]++
						ids[i] = it.ID
					}
					mu.Unlock()
					if err := q.Ack(ctx, ids...); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if len(seen) != n {
			t.Fatalf("%d distinct items read, want %d", len(seen), n)
		}
		for body, c := range seen {
			if c != 1 {
				t.Fatalf("item %s read %d times", body, c)
			}
		}
	})

	t.Run("FailedItemReturnsThenDies", func(t *testing.T) {
		q := newQueue(t, opts)
		if _, err := q.Enqueue(ctx, "poison", []byte("p")); err != nil {
			t.Fatal(err)
		}
		for attempt := 1; attempt <= opts.MaxAttempts; attempt++ {
			items := readN(t, q, 1)
			if items[0].Attempts != attempt {
				t.Fatalf("attempt %d: item says %d", attempt, items[0].Attempts)
			}
			dead, err := q.Fail(ctx, items[0])
			if err != nil {
				t.Fatal(err)
			}
			if dead != (attempt == opts.MaxAttempts) {
				t.Fatalf("attempt %d: dead = %v", attempt, dead)
			}
		}
		if more, _ := q.Read(ctx, 10, 3*opts.RetryAfter); len(more) != 0 {
			t.Fatalf("dead item handed out again")
		}
		depth, dead, err := q.Stats(ctx)
		if err != nil || depth != 0 || dead != 1 {
			t.Fatalf("stats = depth %d dead %d (%v), want 0 and 1", depth, dead, err)
		}
	})
}

// readN reads until n items arrived or a deadline passes.
func readN(t *testing.T, q Queue, n int) []queue.Item {
	t.Helper()
	var out []queue.Item
	deadline := time.Now().Add(10 * time.Second)
	for len(out) < n && time.Now().Before(deadline) {
		items, err := q.Read(context.Background(), n-len(out), 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, items...)
	}
	if len(out) != n {
		t.Fatalf("read %d items, want %d", len(out), n)
	}
	return out
}
