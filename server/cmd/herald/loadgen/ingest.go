package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/pkg/webhook/standard"
	"github.com/heraldhq/herald/pkg/webhook/talkjs"
)

// IngestOptions describe a webhook ingestion run: signed webhooks of one
// provider at a target rate, timed from the request to its 200.
type IngestOptions struct {
	Options
	Provider string  // "talkjs" or "herald" (Standard Webhooks)
	Secret   string  // the provider's signing secret on the node
	Messages int     // webhooks to send
	Rate     float64 // per second; 0 = as fast as possible
	Workers  int     // concurrent senders (default 32)
}

// IngestResult is the outcome of Ingest.
type IngestResult struct {
	Scenario     string        `json:"scenario"`
	Provider     string        `json:"provider"`
	Sent         int64         `json:"sent"`
	Accepted     int64         `json:"accepted"`
	Errors       int64         `json:"errors"`
	Statuses     map[int]int64 `json:"statuses"`
	TargetRate   float64       `json:"target_rate"`
	AchievedRate float64       `json:"achieved_rate"`
	TimeTo200    Latency       `json:"time_to_200"`
	CPU          CPU           `json:"cpu"` // per accepted webhook
}

// signedWebhook builds a unique, signed webhook of the provider for user i.
func signedWebhook(provider, secret string, seq int64, recipient string, now time.Time) ([]byte, http.Header, error) {
	h := http.Header{"Content-Type": {"application/json"}}
	switch provider {
	case "talkjs":
		body := fmt.Appendf(nil, `{"id":"lg_%d_%d","createdAt":%d,"type":"message.sent","data":{"conversation":{"id":"lgc_%s","participants":{"lgsender":{"notify":true},%q:{"notify":true}}},"message":{"id":"lgm_%d","text":"load","senderId":"lgsender","conversationId":"lgc_%s","type":"UserMessage"},"sender":{"id":"lgsender","name":"Load"}}}`,
			now.UnixNano(), seq, now.UnixMilli(), recipient, recipient, seq, recipient)
		sig, ts := talkjs.Sign(secret, now, body)
		h.Set("X-TalkJS-Signature", sig)
		h.Set("X-TalkJS-Timestamp", ts)
		return body, h, nil
	case "herald":
		body := fmt.Appendf(nil, `{"type":"notification.send","data":{"to":[%q],"title":"load","body":"generated"}}`, recipient)
		id := fmt.Sprintf("lg_%d_%d", now.UnixNano(), seq)
		sig, err := standard.Sign(secret, id, now, body)
		if err != nil {
			return nil, nil, err
		}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", fmt.Sprint(now.Unix()))
		h.Set("webhook-signature", sig)
		return body, h, nil
	}
	return nil, nil, fmt.Errorf("loadgen: ingest provider %q: want talkjs or herald", provider)
}

// Ingest sends o.Messages signed webhooks and measures the time to each
// answer; only 200s count as accepted.
func Ingest(ctx context.Context, o IngestOptions) (*IngestResult, error) {
	if o.Peer != "" {
		return nil, fmt.Errorf("loadgen: ingest: webhooks are Herald's own; peer %q is not supported", o.Peer)
	}
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if o.Workers <= 0 {
		o.Workers = 32
	}
	if o.Users <= 0 {
		o.Users = 1000
	}
	if _, _, err := signedWebhook(o.Provider, o.Secret, 0, "x", time.Now()); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	client, err := newPoster(o.SendURL, o.Sources)
	if err != nil {
		return nil, err
	}
	res := &IngestResult{Scenario: "ingest", Provider: o.Provider, TargetRate: o.Rate, Statuses: map[int]int64{}}
	var sent, accepted, errs atomic.Int64
	var mu sync.Mutex
	times := make([]time.Duration, 0, o.Messages)
	start := time.Now()
	cpu := startCPU(o.serverPIDs(), o.RedisPIDs)
	progress := func() { o.Progress("sent %d/%d, accepted %d", sent.Load(), o.Messages, accepted.Load()) }
	drive(ctx, o.Messages, o.Workers, o.Rate, progress, func(i int) {
		now := time.Now()
		body, h, _ := signedWebhook(o.Provider, o.Secret, int64(i), userName(rand.IntN(o.Users)), now)
		status, err := client.post(ctx, "/webhooks/"+o.Provider, headerLines(h), body)
		sent.Add(1)
		if err != nil {
			errs.Add(1)
			return
		}
		took := time.Since(now)
		mu.Lock()
		res.Statuses[status]++
		if status == http.StatusOK {
			times = append(times, took)
		}
		mu.Unlock()
		if status == http.StatusOK {
			accepted.Add(1)
		} else {
			errs.Add(1)
		}
	})
	elapsed := time.Since(start)
	res.Sent, res.Accepted, res.Errors = sent.Load(), accepted.Load(), errs.Load()
	res.AchievedRate = float64(res.Accepted) / elapsed.Seconds()
	res.TimeTo200 = summarize(times)
	res.CPU = cpu.per(res.Accepted)
	return res, nil
}
