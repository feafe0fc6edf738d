package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/heraldhq/herald/pkg/queue"
	"github.com/heraldhq/herald/pkg/webhook"
)

// Result is what happened to one queued item, for metrics and logs.
type Result struct {
	Event   *webhook.Event // nil when the item could not be decoded
	Outcome Outcome
	Err     error
	Dead    bool          // moved to the dead letters
	Latency time.Duration // from enqueue to done
}

// WorkerOptions configure Run.
type WorkerOptions struct {
	Workers int           // concurrent workers (default 4)
	Batch   int           // items per read (default 16)
	Wait    time.Duration // how long one read blocks (default 1s)
	Logger  *slog.Logger
	// OnResult, when set, is called after each item.
	OnResult func(Result)
}

// Run drains q through p until ctx ends, then returns once every worker
// has finished the item in hand.
func Run(ctx context.Context, q queue.Queue, p *Processor, opts WorkerOptions) {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Batch <= 0 {
		opts.Batch = 16
	}
	if opts.Wait <= 0 {
		opts.Wait = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(ctx, q, p, &opts)
		}()
	}
	wg.Wait()
}

func work(ctx context.Context, q queue.Queue, p *Processor, opts *WorkerOptions) {
	// The items of a batch run side by side: their store writes then
	// share group commits instead of queueing one behind another. The
	// handlers live as long as the worker, so the stacks they grow in
	// decoding and templates are grown once, not once per item.
	// An item in hand is finished even when shutdown begins, so its ack is
	// not lost to a cancelled context.
	items := make(chan queue.Item)
	defer close(items)
	var batch sync.WaitGroup
	for range opts.Batch {
		go func() {
			for it := range items {
				handle(context.WithoutCancel(ctx), q, p, it, opts)
				batch.Done()
			}
		}()
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		got, err := q.Read(ctx, opts.Batch, opts.Wait)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			opts.Logger.Warn("webhook queue read failed", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		batch.Add(len(got))
		for _, it := range got {
			items <- it
		}
		batch.Wait()
	}
}

func handle(ctx context.Context, q queue.Queue, p *Processor, it queue.Item, opts *WorkerOptions) {
	var r Result
	var ev webhook.Event
	if err := json.Unmarshal(it.Body, &ev); err != nil {
		// Undecodable: no retry can help.
		r.Err = err
		it.Attempts = 1 << 30
		r.Dead, _ = q.Fail(ctx, it)
		opts.Logger.Error("webhook queue item undecodable", "item", it.ID, "err", err)
		report(opts, r, it)
		return
	}
	r.Event = &ev
	r.Outcome, r.Err = p.Process(ctx, &ev)
	if r.Err == nil {
		if err := r.Outcome.Unrecorded; err != nil {
			opts.Logger.Warn("webhook event published but not recorded as done", "provider", ev.Provider, "event", ev.ID, "err", err)
		}
		if err := q.Ack(ctx, it.ID); err != nil {
			// Processed but still queued: a redelivery finds it done.
			opts.Logger.Warn("webhook queue ack failed", "item", it.ID, "err", err)
		}
		report(opts, r, it)
		return
	}
	dead, err := q.Fail(ctx, it)
	r.Dead = dead
	level := slog.LevelWarn
	if dead {
		level = slog.LevelError
	}
	if !errors.Is(r.Err, ErrInProgress) || dead {
		opts.Logger.Log(ctx, level, "webhook event failed", "provider", ev.Provider, "event", ev.ID,
			"type", ev.Type, "attempt", it.Attempts, "dead_letter", dead, "err", r.Err)
	}
	if err != nil {
		opts.Logger.Warn("webhook queue fail failed", "item", it.ID, "err", err)
	}
	report(opts, r, it)
}

func report(opts *WorkerOptions, r Result, it queue.Item) {
	if opts.OnResult == nil {
		return
	}
	if !it.Enqueued.IsZero() {
		r.Latency = time.Since(it.Enqueued)
	}
	opts.OnResult(r)
}
