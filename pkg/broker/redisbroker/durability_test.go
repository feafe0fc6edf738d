package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/broker/brokertest"
	"github.com/heraldhq/herald/pkg/broker/redisbroker"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/redistest"
)

// TestPublishOfTheSameIDAppendsOnce: a sender whose reply was lost sends
// the notification again under its id; the retry appends and publishes
// nothing and answers the first cursor, even after many other events of
// the user (the previous generation of recorded ids), and a retraction
// sharing the notification's id is not taken for a retry.
func TestPublishOfTheSameIDAppendsOnce(t *testing.T) {
	srv := redistest.Start(t)
	sink := &brokertest.Sink{}
	b := newBroker(t, srv, sink.Handle, redisbroker.Options{})
	subscribe(t, b, "u")
	first := brokertest.Event("u", "once")
	publish(t, b, first)
	// The reply was lost: the same notification comes again.
	retry := brokertest.Event("u", "once")
	publish(t, b, retry)
	if retry.Cursor != first.Cursor {
		t.Fatalf("retry got cursor %v, the first try %v", retry.Cursor, first.Cursor)
	}
	publish(t, b, brokertest.Event("u", "next"))
	if got := sink.WaitFor(t, "u", 2); !slices.Equal(got, []string{"1:once", "2:next"}) {
		t.Fatalf("delivered %v, want [1:once 2:next]", got)
	}
	events, _, err := b.History(context.Background(), "u", notification.Cursor{}, 10)
	if err != nil || fmt.Sprint(seqsOfEvents(events)) != "[1 2]" {
		t.Fatalf("history %v %v, want [1 2]", seqsOfEvents(events), err)
	}

	// Many events later, the first id is still recognised.
	var many []*notification.Event
	for i := range 200 {
		many = append(many, brokertest.Event("u", fmt.Sprint("m", i)))
	}
	publish(t, b, many...)
	late := brokertest.Event("u", "m5")
	publish(t, b, late)
	if late.Cursor != many[5].Cursor {
		t.Fatalf("retry of m5 got %v, the first try %v", late.Cursor, many[5].Cursor)
	}
	last := brokertest.Event("u", "m199")
	publish(t, b, last)
	if last.Cursor != many[199].Cursor {
		t.Fatalf("retry of m199 got %v, the first try %v", last.Cursor, many[199].Cursor)
	}

	retract := &notification.Event{User: "u", Kind: notification.KindRetract, ID: first.ID, Created: time.Now(), Payload: []byte(`{}`)}
	publish(t, b, retract)
	if retract.Cursor.Seq != many[199].Cursor.Seq+1 {
		t.Fatalf("retraction got %v, want the seq after %v", retract.Cursor, many[199].Cursor)
	}
	sink.WaitFor(t, "u", 2+200+1)
	if n := len(sink.Titles("u")); n != 203 {
		t.Fatalf("delivered %d events, want 203", n)
	}
}

// TestPublishWaitsForTheReplica: with MinReplicas, a publish succeeds only
// once a replica has it. While the replica stalls the publish fails with
// ErrUnavailable; the sender's retry after the replica is back succeeds
// with the first cursor and leaves one history entry.
func TestPublishWaitsForTheReplica(t *testing.T) {
	s := redistest.StartSentinel(t)
	c := s.Client()
	ap, err := c.AutoPipeline()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ap.Close() })
	b, err := redisbroker.New(ap, func(*notification.Event) {}, redisbroker.Options{
		Direct: c, MinReplicas: 1, ReplicaTimeout: 300 * time.Millisecond, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx := context.Background()
	publish(t, b, brokertest.Event("u", "replicated"))

	var replica *redistest.Server
	for _, srv := range s.Servers() {
		if srv != s.Primary() {
			replica = srv
		}
	}
	replica.Pause()
	ev := brokertest.Event("u", "stalled")
	err = b.Publish(ctx, []*notification.Event{ev})
	replica.Resume()
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("publish while the replica stalls: %v, want ErrUnavailable", err)
	}
	retry := brokertest.Event("u", "stalled")
	publish(t, b, retry)
	events, _, err := b.History(ctx, "u", notification.Cursor{}, 10)
	if err != nil || fmt.Sprint(seqsOfEvents(events)) != "[1 2]" || retry.Cursor.Seq != 2 {
		t.Fatalf("history %v %v, retry at %v; want [1 2] and 2", seqsOfEvents(events), err, retry.Cursor)
	}
}

// TestClusterPrimaryKilledLosesNothingAcknowledged: a sender publishes to
// one user without pause, retrying what fails under the same id, while the
// replica of the user's primary stalls (so it misses what the primary
// accepts meanwhile), the primary is SIGKILLed and the stalled replica is
// promoted. Without the wait for replicas, what the primary accepted alone
// is lost. Every publish that succeeded is in the history afterwards,
// exactly once, in order.
func TestClusterPrimaryKilledLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	cl := redistest.StartCluster(t)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ClusterStateReloadInterval: time.Second})
	t.Cleanup(func() { _ = cc.Close() })
	ap, err := cc.AutoPipeline()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ap.Close() })
	b, err := redisbroker.New(ap, func(*notification.Event) {}, redisbroker.Options{
		Cluster: cc, MinReplicas: 1, ReplicaTimeout: 200 * time.Millisecond, Logger: quiet,
		Retention: broker.Retention{MaxCount: 100000},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	const user = "durable"
	primary := cl.PrimaryOf("{" + user + "}")
	replica := cl.ReplicaOf(primary)

	ctx := context.Background()
	stop := make(chan struct{})
	done := make(chan []string)
	go func() {
		var acked []string
		for k := 0; ; k++ {
			select {
			case <-stop:
				done <- acked
				return
			default:
			}
			title := fmt.Sprintf("e%04d", k)
			for deadline := time.Now().Add(60 * time.Second); ; {
				err := b.Publish(ctx, []*notification.Event{brokertest.Event(user, title)})
				if err == nil {
					acked = append(acked, title)
					time.Sleep(2 * time.Millisecond)
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("publish %s: still failing after 60s: %v", title, err)
					done <- acked
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	// The replica stalls and the primary drops its link: what the primary
	// accepts from now on never reaches the replica.
	replica.Pause()
	if err := primary.Client().ClientKillByFilter(ctx, "TYPE", "replica").Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	primary.Kill()
	replica.Resume()
	cl.WaitFailover(primary)
	time.Sleep(time.Second)
	close(stop)
	acked := <-done
	if t.Failed() {
		return
	}
	events, _, err := b.History(ctx, user, notification.Cursor{}, 100000)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range events {
		got = append(got, brokertest.Title(ev))
	}
	t.Logf("%d publishes acknowledged, %d events in the history", len(acked), len(got))
	seen := map[string]int{}
	for _, title := range got {
		seen[title]++
	}
	var wrong []string
	for _, title := range acked {
		if seen[title] != 1 {
			wrong = append(wrong, fmt.Sprintf("%s×%d", title, seen[title]))
		}
	}
	if len(wrong) > 0 {
		t.Fatalf("%d acknowledged publishes are not once in the history: %v", len(wrong), wrong[:min(len(wrong), 20)])
	}
	// The history's order is the order the sender had them acknowledged.
	var inHistory []string
	for _, title := range got {
		if slices.Contains(acked, title) {
			inHistory = append(inHistory, title)
		}
	}
	if !slices.Equal(inHistory, acked) {
		t.Errorf("the history's order differs from the order the publishes were acknowledged in")
	}
}

// TestOneScriptCallPublishesManyEventsAndIsolatesAFailure: a publish of
// 100 events of 40 users runs as a few script calls (not one per event),
// every user's events arrive in order with contiguous seqs, and an event
// whose key Redis refuses (a meta key of the wrong type) fails alone.
func TestOneScriptCallPublishesManyEventsAndIsolatesAFailure(t *testing.T) {
	srv := redistest.Start(t)
	sink := &brokertest.Sink{}
	b := newBroker(t, srv, sink.Handle, redisbroker.Options{})
	ctx := context.Background()
	c := srv.Client()
	if err := c.Set(ctx, "herald:{broken}:m", "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var events []*notification.Event
	for i := range 100 {
		u := fmt.Sprint("u", i%40)
		subscribe(t, b, u)
		events = append(events, brokertest.Event(u, fmt.Sprint("e", i)))
		if i == 50 {
			events = append(events, brokertest.Event("broken", "refused"))
		}
	}
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	err := b.Publish(ctx, events)
	if err == nil || !strings.Contains(err.Error(), "1 of 101 events failed") || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("publish: %v, want the broken user's event to fail alone", err)
	}
	for _, ev := range events {
		if (ev.User == "broken") != (ev.Cursor.Seq == 0) {
			t.Fatalf("%s %s: cursor %v", ev.User, brokertest.Title(ev), ev.Cursor)
		}
	}
	calls := scriptCalls(t, c)
	if calls == 0 || calls > 8 {
		t.Fatalf("%d script calls for 101 events, want a few", calls)
	}
	for u := range 40 {
		user := fmt.Sprint("u", u)
		var want []string
		for i := u; i < 100; i += 40 {
			want = append(want, fmt.Sprintf("%d:e%d", len(want)+1, i))
		}
		if got := sink.WaitFor(t, user, len(want)); !slices.Equal(got, want) {
			t.Fatalf("%s got %v, want %v", user, got, want)
		}
	}
}

// scriptCalls is how many EVALSHA calls Redis ran since its stats were
// reset.
func scriptCalls(t *testing.T, c *redis.Client) int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	return int(commandStats(info)["evalsha"]["calls"])
}

// commandStats parses INFO commandstats: command → field (calls, usec, …)
// → value.
func commandStats(info string) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		cmd, isStat := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isStat {
			continue
		}
		fields := map[string]float64{}
		for _, f := range strings.Split(rest, ",") {
			if k, v, ok := strings.Cut(f, "="); ok {
				fields[k], _ = strconv.ParseFloat(v, 64)
			}
		}
		out[cmd] = fields
	}
	return out
}
