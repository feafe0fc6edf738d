package queuelog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/queue"
	"github.com/heraldhq/herald/pkg/store/internal/segfile"
)

// memBacking is a Backing in memory that can be made to fail.
type memBacking struct {
	mu   sync.Mutex
	keys map[string]time.Time
	dead []DeadItem
	fail atomic.Bool
	puts atomic.Int64
}

var errBackingDown = errors.New("backing down")

func newMemBacking() *memBacking { return &memBacking{keys: map[string]time.Time{}} }

func (b *memBacking) HasKey(key string, now time.Time) (bool, error) {
	if b.fail.Load() {
		return false, errBackingDown
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	exp, ok := b.keys[key]
	return ok && exp.After(now), nil
}

func (b *memBacking) PutKeys(keys []Key) error {
	if b.fail.Load() {
		return errBackingDown
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range keys {
		b.keys[k.Name] = k.Expires
	}
	b.puts.Add(1)
	return nil
}

func (b *memBacking) PutDead(it DeadItem) error {
	if b.fail.Load() {
		return errBackingDown
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dead = append(b.dead, it)
	return nil
}

func (b *memBacking) DeadCount() (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return int64(len(b.dead)), nil
}

func (b *memBacking) has(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.keys[key]
	return ok
}

func openLog(t *testing.T, dir string, b Backing, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, b, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func enqueue(t *testing.T, l *Log, key, body string) {
	t.Helper()
	dup, err := l.Enqueue(context.Background(), key, []byte(body))
	if err != nil || dup {
		t.Fatalf("enqueue %s: dup=%v err=%v", key, dup, err)
	}
}

func read(t *testing.T, l *Log, max int) []queue.Item {
	t.Helper()
	items, err := l.Read(context.Background(), max, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

func bodies(items []queue.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, fmt.Sprintf("%s/%d", it.Body, it.Attempts))
	}
	return out
}

func TestRestartKeepsWhatWasNotAcked(t *testing.T) {
	dir, b := t.TempDir(), newMemBacking()
	ctx := context.Background()
	l := openLog(t, dir, b, Options{KeyFlush: time.Hour})
	for _, k := range []string{"a", "b", "c"} {
		enqueue(t, l, k, k)
	}
	items := read(t, l, 2)
	if err := l.Ack(ctx, items[0].ID); err != nil {
		t.Fatal(err)
	}
	// The process stops holding b; nothing was written behind (KeyFlush
	// is an hour), so the keys come back from the log alone.
	l.Close()
	b2 := newMemBacking()
	l = openLog(t, dir, b2, Options{KeyFlush: time.Hour})
	if got := bodies(read(t, l, 10)); !slices.Equal(got, []string{"b/2", "c/1"}) {
		t.Fatalf("after restart %v, want b on its second attempt, then c", got)
	}
	for _, k := range []string{"a", "b", "c"} {
		if dup, err := l.Enqueue(ctx, k, []byte("again")); err != nil || !dup {
			t.Fatalf("key %s after restart: dup=%v err=%v", k, dup, err)
		}
	}
	if depth, _, _ := l.Stats(ctx); depth != 2 {
		t.Fatalf("depth %d, want 2", depth)
	}
}

func TestKeysAreWrittenBehindAndStillDeduplicate(t *testing.T) {
	b := newMemBacking()
	l := openLog(t, t.TempDir(), b, Options{KeyFlush: 10 * time.Millisecond})
	enqueue(t, l, "k", "x")
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		inMemory := len(l.keys)
		l.mu.Unlock()
		if b.has("k") && inMemory == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("key not moved to the backing: backing has it %v, %d in memory", b.has("k"), inMemory)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if dup, err := l.Enqueue(context.Background(), "k", []byte("y")); err != nil || !dup {
		t.Fatalf("after write-behind: dup=%v err=%v", dup, err)
	}
}

func TestBackingDownIsUnavailable(t *testing.T) {
	b := newMemBacking()
	l := openLog(t, t.TempDir(), b, Options{})
	b.fail.Store(true)
	if _, err := l.Enqueue(context.Background(), "k", []byte("x")); !errors.Is(err, queue.ErrUnavailable) {
		t.Fatalf("enqueue with the backing down: %v, want ErrUnavailable", err)
	}
	b.fail.Store(false)
	enqueue(t, l, "k", "x") // the failed attempt left no reservation behind
}

func TestConcurrentDuplicatesQueueOnce(t *testing.T) {
	l := openLog(t, t.TempDir(), newMemBacking(), Options{})
	var fresh atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dup, err := l.Enqueue(context.Background(), "same", []byte("x"))
			if err != nil {
				t.Error(err)
			}
			if !dup {
				fresh.Add(1)
			}
		}()
	}
	wg.Wait()
	if fresh.Load() != 1 {
		t.Fatalf("%d enqueues were not duplicates, want 1", fresh.Load())
	}
	if depth, _, _ := l.Stats(context.Background()); depth != 1 {
		t.Fatalf("depth %d", depth)
	}
}

func TestTornTailIsCut(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, newMemBacking(), Options{})
	enqueue(t, l, "a", "a")
	seg := l.segs[len(l.segs)-1]
	path, size := filepath.Join(dir, segfile.Name(seg.id)), seg.size
	enqueue(t, l, "b", "b")
	l.Close()
	for _, cut := range []int64{1, segfile.Header - 1, segfile.Header + 3} {
		if err := os.Truncate(path, size+cut); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, dir, newMemBacking(), Options{})
		// Reads append take records, so only the bodies are compared.
		if got := read(t, l, 10); len(got) != 1 || string(got[0].Body) != "a" {
			t.Fatalf("cut at +%d: %v", cut, bodies(got))
		}
		enqueue(t, l, "b", "b")
		l.Close()
	}
}

func TestSegmentsAreReclaimed(t *testing.T) {
	dir, b := t.TempDir(), newMemBacking()
	ctx := context.Background()
	opts := Options{SegmentSize: 4 << 10, KeyFlush: 5 * time.Millisecond}
	l := openLog(t, dir, b, opts)
	enqueue(t, l, "slow", "slow") // held by a reader the whole time
	if got := read(t, l, 1); len(got) != 1 {
		t.Fatalf("read %d items, want the slow one", len(got))
	}
	body := string(make([]byte, 300))
	for i := range 200 {
		enqueue(t, l, fmt.Sprint("k", i), body)
		items := read(t, l, 10)
		ids := make([]string, len(items))
		for j, it := range items {
			ids[j] = it.ID
		}
		if err := l.Ack(ctx, ids...); err != nil {
			t.Fatal(err)
		}
	}
	// 60 KB went through 4 KB segments; the slow item was carried forward.
	deadline := time.Now().Add(5 * time.Second)
	for {
		files, _ := segfile.List(dir)
		if len(files) <= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d segments left", len(files))
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.Close()
	l = openLog(t, dir, newMemBacking(), opts)
	if got := bodies(read(t, l, 10)); !slices.Equal(got, []string{"slow/2"}) {
		t.Fatalf("after restart %v, want only the slow item, once", got)
	}
}

func TestFailRetriesThenDies(t *testing.T) {
	b := newMemBacking()
	dir := t.TempDir()
	opts := Options{Options: queue.Options{MaxAttempts: 2, RetryAfter: 500 * time.Millisecond}}
	l := openLog(t, dir, b, opts)
	ctx := context.Background()
	enqueue(t, l, "p", "p")
	it := read(t, l, 1)[0]
	if dead, err := l.Fail(ctx, it); err != nil || dead {
		t.Fatalf("first fail: dead=%v err=%v", dead, err)
	}
	if got := read(t, l, 1); len(got) != 0 {
		t.Fatalf("handed out before its retry time: %v", bodies(got))
	}
	// The retry time and attempt count survive a restart.
	l.Close()
	l = openLog(t, dir, b, opts)
	var again []queue.Item
	for deadline := time.Now().Add(5 * time.Second); len(again) == 0 && time.Now().Before(deadline); {
		again = read(t, l, 1)
	}
	if got := bodies(again); !slices.Equal(got, []string{"p/2"}) {
		t.Fatalf("retry %v, want p on its second attempt", got)
	}
	if dead, err := l.Fail(ctx, again[0]); err != nil || !dead {
		t.Fatalf("second fail: dead=%v err=%v", dead, err)
	}
	if depth, dead, _ := l.Stats(ctx); depth != 0 || dead != 1 || string(b.dead[0].Body) != "p" {
		t.Fatalf("depth %d dead %d", depth, dead)
	}
	l.Close()
	l = openLog(t, dir, b, opts)
	if got := read(t, l, 1); len(got) != 0 {
		t.Fatalf("dead item back after restart: %v", bodies(got))
	}
}

// TestCarryForwardUnderConcurrentTraffic: while producers, readers and
// failures keep the log busy and segments roll, an item held the whole
// time is carried forward, and every item is handed out until acked,
// acked once, and gone after a restart.
func TestCarryForwardUnderConcurrentTraffic(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	opts := Options{SegmentSize: 4 << 10, KeyFlush: 5 * time.Millisecond,
		Options: queue.Options{MaxAttempts: 3, RetryAfter: 10 * time.Millisecond}}
	l := openLog(t, dir, newMemBacking(), opts)
	enqueue(t, l, "slow", "slow")
	slow := read(t, l, 1)[0]

	const n = 600
	pad := string(make([]byte, 150))
	var wg sync.WaitGroup
	for p := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < n; i += 2 {
				body := fmt.Sprint(i, pad)
				if i%10 == 0 {
					body = "fail-once " + body
				}
				if dup, err := l.Enqueue(ctx, fmt.Sprint("k", i), []byte(body)); err != nil || dup {
					t.Errorf("enqueue %d: dup=%v err=%v", i, dup, err)
				}
			}
		}()
	}
	var mu sync.Mutex
	acked := map[string]int{}
	var done atomic.Int64
	deadline := time.Now().Add(30 * time.Second)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done.Load() < n && time.Now().Before(deadline) {
				items, err := l.Read(ctx, 5, 20*time.Millisecond)
				if err != nil {
					t.Error(err)
					return
				}
				for _, it := range items {
					if strings.HasPrefix(string(it.Body), "fail-once") && it.Attempts == 1 {
						if _, err := l.Fail(ctx, it); err != nil {
							t.Error(err)
						}
						continue
					}
					if err := l.Ack(ctx, it.ID); err != nil {
						t.Error(err)
						continue
					}
					mu.Lock()
					acked[string(it.Body)]++
					mu.Unlock()
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(acked) != n {
		t.Fatalf("%d items acked, want %d", len(acked), n)
	}
	for body, c := range acked {
		if c != 1 {
			t.Fatalf("item %.12q acked %d times", body, c)
		}
	}
	l.mu.Lock()
	slowSeg := l.items[1].seg.id
	l.mu.Unlock()
	if slowSeg == 1 {
		t.Fatal("the held item was never carried forward")
	}
	if err := l.Ack(ctx, slow.ID); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openLog(t, dir, newMemBacking(), opts)
	if got := read(t, l, 10); len(got) != 0 {
		t.Fatalf("after restart: %d items handed out again, %.20q", len(got), bodies(got))
	}
}

func TestItemWhoseFailureCannotBeKeptIsHandedOutAgain(t *testing.T) {
	b := newMemBacking()
	l := openLog(t, t.TempDir(), b, Options{Options: queue.Options{MaxAttempts: 1}})
	ctx := context.Background()
	enqueue(t, l, "p", "p")
	it := read(t, l, 1)[0]
	b.fail.Store(true) // the dead letters cannot be written
	if _, err := l.Fail(ctx, it); err == nil {
		t.Fatal("a failure that could not be kept was reported as kept")
	}
	b.fail.Store(false)
	again := read(t, l, 1)
	if len(again) != 1 || string(again[0].Body) != "p" {
		t.Fatalf("after the failed Fail: %v, want p handed out again", bodies(again))
	}
	if dead, err := l.Fail(ctx, again[0]); err != nil || !dead {
		t.Fatalf("second Fail: dead=%v err=%v", dead, err)
	}
}
