package redisstore

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/queue"
)

// Reading the partitions: see the comment at the top of queue.go.

// readableParts is the partitions a read looks at: this node's and those
// beyond its count that held entries at the last look, which is taken
// again every drainCheckEvery.
func (q *Queue) readableParts(ctx context.Context) []*queuePart {
	q.mu.Lock()
	look := q.n < MaxPartitions && time.Since(q.lastDrain) >= drainCheckEvery
	if look {
		q.lastDrain = time.Now()
	}
	parts := q.readable
	q.mu.Unlock()
	if !look {
		return parts
	}
	beyond := q.parts[q.n:]
	lens := make([]*redis.IntCmd, len(beyond))
	_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, part := range beyond {
			lens[i] = p.XLen(ctx, part.stream)
		}
		return nil
	})
	if err != nil {
		return parts // keep the last look's set; look again next time
	}
	parts = q.parts[:q.n:q.n]
	for i, part := range beyond {
		if lens[i].Val() > 0 {
			parts = append(parts, part)
		}
	}
	q.mu.Lock()
	q.readable = parts
	q.mu.Unlock()
	return parts
}

// Read hands out up to max entries: first any read beyond an earlier
// call's max, then any abandoned by a dead or slow reader (idle
// RetryAfter), else new ones, waiting up to wait.
func (q *Queue) Read(ctx context.Context, max int, wait time.Duration) ([]queue.Item, error) {
	if max < 1 {
		max = 1
	}
	if items := q.takeSpare(max); len(items) > 0 {
		return items, nil
	}
	parts := q.readableParts(ctx)
	if err := q.ensureGroups(ctx, parts); err != nil {
		return nil, unavailable("read", err)
	}
	items, err := q.claim(ctx, parts, max)
	if err != nil || len(items) > 0 {
		return items, err
	}
	if wait < time.Millisecond {
		wait = time.Millisecond
	}
	if len(parts) == 1 || !q.split.Load() {
		items, err := q.xread(ctx, parts, max, wait)
		switch {
		case err == nil:
			return q.keep(items, max), nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case !redis.HasErrorPrefix(err, "CROSSSLOT"):
			return nil, unavailable("read", err)
		}
		q.split.Store(true) // a Cluster: from now on, per partition
	}
	return q.readEach(ctx, parts, max, wait)
}

// readEach reads the partitions one call each (a Cluster): a sweep that
// does not block, then a blocking read of one partition for at most
// splitPoll, until something came or wait has passed.
func (q *Queue) readEach(ctx context.Context, parts []*queuePart, count int, wait time.Duration) ([]queue.Item, error) {
	deadline := time.Now().Add(wait)
	one := make([]*queuePart, 1)
	for {
		items, err := q.sweep(ctx, parts, count)
		if err != nil || len(items) > 0 {
			return items, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		one[0] = parts[int(q.next.Add(1)%uint32(len(parts)))]
		// BLOCK 0 would wait for ever: never pass less than 1ms.
		items, err = q.xread(ctx, one, count, max(min(left, splitPoll), time.Millisecond))
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, unavailable("read", err)
		}
		if len(items) > 0 || !time.Now().Before(deadline) {
			return items, nil
		}
	}
}

// sweep reads new entries of every partition without blocking, one
// XREADGROUP each in one pipeline (one round trip per primary).
func (q *Queue) sweep(ctx context.Context, parts []*queuePart, max int) ([]queue.Item, error) {
	cmds := make([]*redis.XStreamSliceCmd, len(parts))
	_, _ = q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, part := range parts {
			cmds[i] = p.XReadGroup(ctx, &redis.XReadGroupArgs{
				Group: queueGroup, Consumer: q.consumer, Streams: []string{part.stream, ">"},
				Count: int64(max), Block: -1,
			})
		}
		return nil
	})
	var items []queue.Item
	for i, c := range cmds {
		res, err := c.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			groupLost(err, parts[i])
			// Entries already read stay pending: they are claimed later.
			q.keepAll(items)
			return nil, unavailable("read", err)
		}
		for _, s := range res {
			for _, m := range s.Messages {
				items = append(items, toItem(parts[i], m, 1))
			}
		}
	}
	return q.keep(items, max), nil
}

// xread is one XREADGROUP of new entries from the streams of parts,
// blocking up to block (none when negative).
func (q *Queue) xread(ctx context.Context, parts []*queuePart, max int, block time.Duration) ([]queue.Item, error) {
	streams := make([]string, 2*len(parts))
	for i, p := range parts {
		streams[i], streams[len(parts)+i] = p.stream, ">"
	}
	res, err := q.c.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: queueGroup, Consumer: q.consumer, Streams: streams,
		Count: int64(max), Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		groupLost(err, parts...)
		return nil, err
	}
	var items []queue.Item
	for _, s := range res {
		part := parts[0]
		for _, p := range parts {
			if p.stream == s.Stream {
				part = p
				break
			}
		}
		for _, m := range s.Messages {
			items = append(items, toItem(part, m, 1))
		}
	}
	return items, nil
}

// keep returns the first max of items and keeps the rest (read from
// several partitions at once) for the next Read.
func (q *Queue) keep(items []queue.Item, max int) []queue.Item {
	if len(items) <= max {
		return items
	}
	q.keepAll(items[max:])
	return items[:max:max]
}

func (q *Queue) keepAll(items []queue.Item) {
	if len(items) == 0 {
		return
	}
	q.mu.Lock()
	q.spare = append(q.spare, items...)
	q.mu.Unlock()
}

// takeSpare hands out up to max of the entries kept by keep.
func (q *Queue) takeSpare(max int) []queue.Item {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.spare) == 0 {
		return nil
	}
	n := min(max, len(q.spare))
	out := slices.Clone(q.spare[:n])
	q.spare = slices.Delete(q.spare, 0, n)
	return out
}

// claim takes over entries idle longer than RetryAfter, in every
// partition, at most once per RetryAfter/4 per node.
func (q *Queue) claim(ctx context.Context, parts []*queuePart, max int) ([]queue.Item, error) {
	q.mu.Lock()
	due := time.Since(q.lastClaim) >= q.opts.RetryAfter/4
	if due {
		q.lastClaim = time.Now()
	}
	q.mu.Unlock()
	if !due {
		return nil, nil
	}
	claims := make([]*redis.XAutoClaimCmd, len(parts))
	_, _ = q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, part := range parts {
			claims[i] = p.XAutoClaim(ctx, &redis.XAutoClaimArgs{
				Stream: part.stream, Group: queueGroup, Consumer: q.consumer,
				MinIdle: q.opts.RetryAfter, Start: "0-0", Count: int64(max),
			})
		}
		return nil
	})
	type claimed struct {
		part *queuePart
		msg  redis.XMessage
	}
	var got []claimed
	var firstErr error
	for i, c := range claims {
		msgs, _, err := c.Result()
		if err != nil {
			groupLost(err, parts[i])
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		for _, m := range msgs {
			got = append(got, claimed{parts[i], m})
		}
	}
	if len(got) == 0 {
		if firstErr != nil {
			return nil, unavailable("claim", firstErr)
		}
		return nil, nil
	}
	// The delivery counts live in the pending entries lists.
	pend := make([]*redis.XPendingExtCmd, len(got))
	_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, g := range got {
			pend[i] = p.XPendingExt(ctx, &redis.XPendingExtArgs{
				Stream: g.part.stream, Group: queueGroup, Start: g.msg.ID, End: g.msg.ID, Count: 1,
			})
		}
		return nil
	})
	if err != nil {
		// What was claimed is ours now; a later claim hands it out again.
		return nil, unavailable("claim", err)
	}
	items := make([]queue.Item, 0, len(got))
	for i, g := range got {
		attempts := 2
		if p, err := pend[i].Result(); err == nil && len(p) == 1 {
			attempts = int(p[0].RetryCount)
		}
		items = append(items, toItem(g.part, g.msg, attempts))
	}
	return q.keep(items, max), nil
}

// An item's ID names its partition: "<partition>/<entry id>", or the bare
// entry id in partition 0 (as with one stream).
func toItem(part *queuePart, m redis.XMessage, attempts int) queue.Item {
	it := queue.Item{ID: m.ID, Attempts: attempts}
	if part.index > 0 {
		it.ID = strconv.Itoa(part.index) + "/" + m.ID
	}
	if b, ok := m.Values[queueField].(string); ok {
		it.Body = []byte(b)
	}
	if t, ok := m.Values["t"].(string); ok {
		if ms, err := strconv.ParseInt(t, 10, 64); err == nil {
			it.Enqueued = time.UnixMilli(ms)
		}
	}
	return it
}
