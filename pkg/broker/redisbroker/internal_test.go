package redisbroker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/redistest"
)

// collector records handler calls in order.
type collector struct {
	mu     sync.Mutex
	events []*notification.Event
}

func (c *collector) handle(ev *notification.Event) {
	c.mu.Lock()
	c.events = append(c.events, ev)
	c.mu.Unlock()
}

func (c *collector) seqs() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]uint64, len(c.events))
	for i, ev := range c.events {
		out[i] = ev.Cursor.Seq
	}
	return out
}

func (c *collector) waitFor(t *testing.T, n int) []uint64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := c.seqs()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d events %v, want %d", len(got), got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testEvent(user, title string) *notification.Event {
	ev, err := notification.NewEvent(&notification.Notification{
		ID: user + "-" + title, User: user, Title: title, CreatedAt: time.Now().UTC(),
	})
	if err != nil {
		panic(err)
	}
	return ev
}

// bareBroker is a broker whose pub/sub replies nobody reads: the test plays
// the receive loop by calling the confirmation handlers itself.
func bareBroker(t *testing.T, c *redis.Client) *Broker {
	t.Helper()
	opts, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		c: c, opts: opts,
		keys: keyspace{prefix: opts.Prefix}, args: newScriptArgs(opts), chans: make(map[string]*channelState),
		ctx: ctx, cancel: cancel,
	}
	b.handler.Register(func(*notification.Event) {})
	b.ps = c.Subscribe(ctx)
	b.startWorkers()
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestStaleConfirmationDoesNotActivateANewSubscription: a user leaves and
// comes back before Redis confirmed the UNSUBSCRIBE; the old generation's
// subscribe confirmation, still in flight, must not activate the new one.
func TestStaleConfirmationDoesNotActivateANewSubscription(t *testing.T) {
	srv := redistest.Start(t)
	b := bareBroker(t, srv.Client())
	ch := b.keys.channel("u")

	old, _ := b.acquire("u")
	b.release(old) // UNSUBSCRIBE sent, not confirmed yet
	cur, fresh := b.acquire("u")
	if !fresh || cur == old {
		t.Fatal("the return after the last release must start a new generation")
	}
	b.onSubscribed(ch) // the old generation's confirmation
	time.Sleep(50 * time.Millisecond)
	if cur.confirmed.Load() || isClosed(cur.ready) {
		t.Fatal("stale confirmation activated the new subscription")
	}
	b.onUnsubscribed(ch)
	b.onSubscribed(ch) // the new generation's own confirmation
	select {
	case <-cur.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("new subscription never activated")
	}
	if cur.err != nil {
		t.Fatal(cur.err)
	}
}

// TestLostConnectionForgetsOwedConfirmations: confirmations owed by a lost
// connection never come, so they must not block the next subscription.
func TestLostConnectionForgetsOwedConfirmations(t *testing.T) {
	srv := redistest.Start(t)
	b := bareBroker(t, srv.Client())
	ch := b.keys.channel("u")

	old, _ := b.acquire("u")
	b.release(old)
	b.connectionLost()
	cur, _ := b.acquire("u")
	b.onSubscribed(ch) // re-subscription on the new connection
	select {
	case <-cur.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("subscription after a lost connection never activated")
	}
}

// TestGapIsFilledFromStream: an event appended to the stream without
// reaching pub/sub (as when pub/sub drops it) is delivered before the next
// published one.
func TestGapIsFilledFromStream(t *testing.T) {
	b, c, rec := newRecordingBroker(t)
	ctx := context.Background()
	if err := b.Subscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, []*notification.Event{testEvent("a", "1")}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, 1)
	appendSilently(t, c, b.keys, "a", 2, 3)
	if err := b.Publish(ctx, []*notification.Event{testEvent("a", "4")}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(rec.waitFor(t, 4)); got != "[1 2 3 4]" {
		t.Fatalf("delivered %s", got)
	}
}

// TestGapBeforeFirstDeliveryIsFilledFromHead: events that pub/sub lost
// between the subscription and the first message it delivers are read from
// the stream after the head recorded at activation, and nothing before it.
func TestGapBeforeFirstDeliveryIsFilledFromHead(t *testing.T) {
	b, c, rec := newRecordingBroker(t)
	ctx := context.Background()
	if err := b.Publish(ctx, []*notification.Event{testEvent("a", "old")}); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	appendSilently(t, c, b.keys, "a", 2)
	if err := b.Publish(ctx, []*notification.Event{testEvent("a", "3")}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(rec.waitFor(t, 2)); got != "[2 3]" {
		t.Fatalf("delivered %s", got)
	}
}

// newRecordingBroker starts a redis-server and a broker whose handler
// records what it delivers; both stop with the test.
func newRecordingBroker(t *testing.T) (*Broker, *redis.Client, *collector) {
	t.Helper()
	c := redistest.Start(t).Client()
	rec := &collector{}
	b, err := New(c, rec.handle, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, c, rec
}

// appendSilently appends events with the given seqs to user's stream the
// way the script does, but without publishing them.
func appendSilently(t *testing.T, c *redis.Client, k keyspace, user string, seqs ...uint64) {
	t.Helper()
	ctx := context.Background()
	for _, seq := range seqs {
		ev := testEvent(user, fmt.Sprint(seq))
		if err := c.HIncrBy(ctx, k.meta(user), "seq", 1).Err(); err != nil {
			t.Fatal(err)
		}
		err := c.XAdd(ctx, &redis.XAddArgs{Stream: k.stream(user), ID: streamID(seq), Values: []any{envelopeField, ev.MarshalEnvelope()}}).Err()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestTrimmedGapSendsReset: when events pub/sub missed were trimmed from
// the stream before the backfill reached them, the sessions get a reset
// (reload the inbox) instead of a silent gap.
func TestTrimmedGapSendsReset(t *testing.T) {
	b, c, rec := newRecordingBroker(t)
	ctx := context.Background()
	if err := b.Subscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, []*notification.Event{testEvent("a", "1")}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, 1)
	// Seq 2 was appended and trimmed away; seq 3 is still there.
	if err := c.HIncrBy(ctx, b.keys.meta("a"), "seq", 1).Err(); err != nil {
		t.Fatal(err)
	}
	appendSilently(t, c, b.keys, "a", 3)
	if err := b.Publish(ctx, []*notification.Event{testEvent("a", "4")}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, 4)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var got []string
	for _, ev := range rec.events {
		if ev.Kind == notification.KindReset {
			got = append(got, "reset")
		} else {
			got = append(got, fmt.Sprint(ev.Cursor.Seq))
		}
	}
	if fmt.Sprint(got) != "[1 3 reset 4]" {
		t.Fatalf("delivered %v", got)
	}
}

// TestClusterUnsubscribeWithoutConnection: the last Unsubscribe of a user
// whose connection was lost, before the user was placed on another, leaves
// no state behind (no unsubscribe confirmation will ever come for it).
func TestClusterUnsubscribeWithoutConnection(t *testing.T) {
	cl := redistest.StartCluster(t)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
	t.Cleanup(func() { _ = cc.Close() })
	b, err := New(cc, func(*notification.Event) {}, Options{Cluster: cc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx := context.Background()
	if err := b.Subscribe(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	b.psMu.Lock()
	b.mu.Lock()
	sh := b.chans["u"].shard
	b.mu.Unlock()
	b.killShardLocked(sh, fmt.Errorf("test"))
	b.mu.Lock()
	us := b.chans["u"].sub
	b.mu.Unlock()
	b.psMu.Unlock()
	b.release(us)
	// Had the topology loop placed the user first, the confirmation of the
	// unsubscribe it then sent clears the state shortly.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b.mu.Lock()
		cs, ok := b.chans["u"]
		var pending int
		if ok {
			pending = cs.unsubPending
		}
		b.mu.Unlock()
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("state left behind (%d unsubscribes awaited)", pending)
		}
	}
}
