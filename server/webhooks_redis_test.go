package server

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/redistest"
	"github.com/heraldhq/herald/pkg/store/redisstore"
	"github.com/heraldhq/herald/pkg/webhook"
	"github.com/heraldhq/herald/pkg/webhook/talkjs"
)

// TestWebhookRedisDownAnswers503ThenRetrySucceeds: with Redis gone the
// webhook is refused with 503 and nothing is half-done; the provider's
// retry after Redis is back is accepted (not a duplicate) and notifies once.
func TestWebhookRedisDownAnswers503ThenRetrySucceeds(t *testing.T) {
	rs := redistest.Start(t)
	n := startNode(t, func(c *configT) { webhookConfig(c); c.RedisURL = rs.URL() })
	body := []byte(webhookFixtures["talkjs"].body)
	rs.Kill()
	status, out := n.postWebhook("talkjs", body, signed(t, "talkjs", body, time.Now()))
	if status != http.StatusServiceUnavailable {
		t.Fatalf("with redis down: %d %v, want 503", status, out)
	}
	rs.Restart()
	waitFor(t, "ready again", func() bool { s, _ := n.do(http.MethodGet, "/readyz", "", nil); return s == http.StatusOK })
	status, out = n.postWebhook("talkjs", body, signed(t, "talkjs", body, time.Now()))
	if status != http.StatusOK || out["status"] != "accepted" {
		t.Fatalf("retry: %d %v, want accepted", status, out)
	}
	waitFor(t, "alice notified", func() bool { return len(n.inbox("alice")) > 0 })
	time.Sleep(300 * time.Millisecond)
	if got := n.inbox("alice"); len(got) != 1 {
		t.Fatalf("alice has %d notifications, want 1", len(got))
	}
}

// TestWebhookOfDeadWorkerIsFinishedByAnotherNode: a node takes an event
// from the shared queue and dies, once before publishing and once after
// publishing but before its ack; another node finishes each, and the
// recipient ends up with each notification exactly once.
func TestWebhookOfDeadWorkerIsFinishedByAnotherNode(t *testing.T) {
	rs := redistest.Start(t)
	cfg := func(c *configT) { webhookConfig(c); c.RedisURL = rs.URL() }
	a := startNode(t, cfg)
	_ = a.srv.drainWorkers(context.Background()) // a's workers stop; the test plays a's dying worker

	// The dying worker is another reader of the same queue.
	client := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	dying := redisstore.New(client, redisstore.Options{NodeID: "dying"})
	t.Cleanup(func() { _ = dying.Close() })
	q := dying.Queue("webhooks", redisstore.QueueOptions{Options: queueOptions(a.cfg), Partitions: a.cfg.WebhookQueuePartitions})

	p := talkjs.New(talkjsSecret)
	enqueue := func(body string) {
		ev, err := p.Parse(nil, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		ev.Provider = p.Name()
		item, _ := json.Marshal(&ev)
		if _, err := q.Enqueue(context.Background(), ev.Provider+":"+ev.ID, item); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()

	// 1. Dies before publishing.
	enqueue(webhookFixtures["talkjs"].body)
	items, err := q.Read(ctx, 1, time.Second)
	if err != nil || len(items) != 1 {
		t.Fatalf("dying worker read %d, %v", len(items), err)
	}
	// 2. Dies after publishing, before the ack.
	second := `{"id":"evt_tj_9","createdAt":1764064800000,"type":"message.sent","data":{
		"conversation":{"id":"c2","participants":{"alice":{"notify":true},"bob":{"notify":true}}},
		"message":{"id":"m9","text":"Second","senderId":"bob","conversationId":"c2"},"sender":{"id":"bob","name":"Bob"}}}`
	enqueue(second)
	items2, err := q.Read(ctx, 1, time.Second)
	if err != nil || len(items2) != 1 {
		t.Fatalf("dying worker read %d, %v", len(items2), err)
	}
	var ev2 webhook.Event
	if err := json.Unmarshal(items2[0].Body, &ev2); err != nil {
		t.Fatal(err)
	}
	if _, err := a.srv.ingest.Process(ctx, &ev2); err != nil {
		t.Fatal(err)
	}
	if got := a.inbox("alice"); len(got) != 1 {
		t.Fatalf("after the half-done worker alice has %d notifications", len(got))
	}

	// b takes over both once they have been idle RetryAfter.
	b := startNode(t, cfg)
	waitFor(t, "both events finished", func() bool {
		depth, _, err := b.srv.queue.Stats(ctx)
		return err == nil && depth == 0
	})
	got := b.inbox("alice")
	if len(got) != 2 || got[0].Body != "Second" && got[1].Body != "Second" {
		t.Fatalf("alice's inbox = %+v, want Hello! and Second once each", got)
	}
	if got[0].ID == got[1].ID {
		t.Fatalf("the same notification twice: %+v", got)
	}
}
