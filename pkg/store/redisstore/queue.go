package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/queue"
)

// The work queue is a Redis stream read through a consumer group: XADD on
// enqueue, XREADGROUP hands each entry to one node, XACK+XDEL when done.
// An entry whose node died stays pending and is claimed (XAUTOCLAIM) by
// whichever node asks after it has been idle RetryAfter; its delivery count
// rises with every hand-out, and past MaxAttempts it moves to a dead-letter
// stream. The stream, the dead letters and the dedupe keys share one hash
// tag, so the enqueue script runs on Redis Cluster too.
const (
	queueGroup = "workers"
	queueField = "b"
)

// enqueueScript claims the dedupe key and appends the body in one step, so
// a webhook is either queued and remembered or neither.
var enqueueScript = redis.NewScript(`
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then
  redis.call('XADD', KEYS[1], '*', 'b', ARGV[1], 't', ARGV[3])
  return 1
end
return 0`)

// Queue is the Redis work queue; every node's Queue reads the same stream.
type Queue struct {
	c        redis.UniversalClient
	opts     queue.Options
	stream   string
	dead     string
	dedupe   string // prefix of dedupe keys
	consumer string

	mu        sync.Mutex
	lastClaim time.Time
	groupOK   bool

	enqueues chan *enqueueReq // drained in pipelines by enqueueLoop
}

// enqueueReq is one Enqueue waiting for its pipeline.
type enqueueReq struct {
	key  string
	body []byte
	at   int64
	done chan enqueueRes
}

type enqueueRes struct {
	dup bool
	err error
}

// maxEnqueuePipeline bounds how many waiting enqueues go in one pipeline.
const maxEnqueuePipeline = 256

// Queue returns the shared work queue named name ("webhooks"), read as
// this node.
func (s *Store) Queue(name string, opts queue.Options) *Queue {
	tag := s.opts.Prefix + "{" + name + "}:"
	q := &Queue{
		c: s.c, opts: opts.WithDefaults(),
		stream: tag + "q", dead: tag + "dead", dedupe: tag + "d:",
		consumer: s.node,
		enqueues: make(chan *enqueueReq, maxEnqueuePipeline),
	}
	go q.enqueueLoop(s.ctx)
	return q
}

func unavailable(op string, err error) error {
	return fmt.Errorf("redisstore queue %s: %w: %w", op, queue.ErrUnavailable, err)
}

// Enqueue appends body unless key was enqueued within the dedupe TTL.
// Concurrent calls share a pipeline: under load a burst of webhooks costs
// one round trip, not one each.
func (q *Queue) Enqueue(ctx context.Context, key string, body []byte) (dup bool, err error) {
	req := &enqueueReq{key: key, body: body, at: time.Now().UnixMilli(), done: make(chan enqueueRes, 1)}
	select {
	case q.enqueues <- req:
	case <-ctx.Done():
		return false, unavailable("enqueue", ctx.Err())
	}
	select {
	case res := <-req.done:
		return res.dup, res.err
	case <-ctx.Done():
		// The pipeline may still queue it; the provider's retry then gets
		// "duplicate", which is the truth.
		return false, unavailable("enqueue", ctx.Err())
	}
}

// enqueueLoop runs waiting enqueues in pipelines until ctx ends.
func (q *Queue) enqueueLoop(ctx context.Context) {
	_ = enqueueScript.Load(ctx, q.c).Err() // EVALSHA below; reloaded on NOSCRIPT
	batch := make([]*enqueueReq, 0, maxEnqueuePipeline)
	for {
		var ok bool
		if batch, ok = nextBatch(ctx, q.enqueues, batch[:0]); !ok {
			return
		}
		q.runEnqueues(ctx, batch)
	}
}

// nextBatch waits for a request on ch, then adds those already waiting
// behind it, up to cap(batch): the calls that arrived while the previous
// round trip was under way share the next one. It reports false once ctx
// has ended.
func nextBatch[T any](ctx context.Context, ch <-chan T, batch []T) ([]T, bool) {
	select {
	case <-ctx.Done():
		return batch, false
	case r := <-ch:
		batch = append(batch, r)
	}
	for len(batch) < cap(batch) {
		select {
		case r := <-ch:
			batch = append(batch, r)
		default:
			return batch, true
		}
	}
	return batch, true
}

func (q *Queue) runEnqueues(ctx context.Context, batch []*enqueueReq) {
	ttl := q.opts.DedupeTTL.Milliseconds()
	run := func(useSha bool) ([]*redis.Cmd, error) {
		cmds := make([]*redis.Cmd, len(batch))
		_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, r := range batch {
				keys := []string{q.stream, q.dedupe + r.key}
				if useSha {
					cmds[i] = enqueueScript.EvalSha(ctx, p, keys, r.body, ttl, r.at)
				} else {
					cmds[i] = enqueueScript.Eval(ctx, p, keys, r.body, ttl, r.at)
				}
			}
			return nil
		})
		return cmds, err
	}
	cmds, err := run(true)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmds, err = run(false) // Redis lost its script cache (restart)
	}
	for i, r := range batch {
		var res enqueueRes
		if cmds[i] != nil && cmds[i].Err() == nil {
			n, _ := cmds[i].Int()
			res.dup = n == 0
		} else {
			e := err
			if cmds[i] != nil && cmds[i].Err() != nil {
				e = cmds[i].Err()
			}
			res.err = unavailable("enqueue", e)
		}
		r.done <- res
	}
}

// ensureGroup creates the consumer group (and the stream) once; after Redis
// lost its data the group is created again on the next NOGROUP.
func (q *Queue) ensureGroup(ctx context.Context) error {
	q.mu.Lock()
	ok := q.groupOK
	q.mu.Unlock()
	if ok {
		return nil
	}
	err := q.c.XGroupCreateMkStream(ctx, q.stream, queueGroup, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return err
	}
	q.mu.Lock()
	q.groupOK = true
	q.mu.Unlock()
	return nil
}

func (q *Queue) groupLost(err error) bool {
	if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
		q.mu.Lock()
		q.groupOK = false
		q.mu.Unlock()
		return true
	}
	return false
}

// Read hands out up to max entries: first any abandoned by a dead or slow
// reader (idle RetryAfter), else new ones, waiting up to wait.
func (q *Queue) Read(ctx context.Context, max int, wait time.Duration) ([]queue.Item, error) {
	if err := q.ensureGroup(ctx); err != nil {
		return nil, unavailable("read", err)
	}
	items, err := q.claim(ctx, max)
	if err != nil || len(items) > 0 {
		return items, err
	}
	if wait < time.Millisecond {
		wait = time.Millisecond
	}
	res, err := q.c.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: queueGroup, Consumer: q.consumer, Streams: []string{q.stream, ">"},
		Count: int64(max), Block: wait,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		q.groupLost(err)
		return nil, unavailable("read", err)
	}
	for _, s := range res {
		for _, m := range s.Messages {
			items = append(items, toItem(m, 1))
		}
	}
	return items, nil
}

// claim takes over entries idle longer than RetryAfter, at most once per
// RetryAfter/4 per node.
func (q *Queue) claim(ctx context.Context, max int) ([]queue.Item, error) {
	q.mu.Lock()
	due := time.Since(q.lastClaim) >= q.opts.RetryAfter/4
	if due {
		q.lastClaim = time.Now()
	}
	q.mu.Unlock()
	if !due {
		return nil, nil
	}
	msgs, _, err := q.c.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: q.stream, Group: queueGroup, Consumer: q.consumer,
		MinIdle: q.opts.RetryAfter, Start: "0-0", Count: int64(max),
	}).Result()
	if err != nil {
		q.groupLost(err)
		return nil, unavailable("claim", err)
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	// The delivery counts live in the pending entries list.
	cmds := make([]*redis.XPendingExtCmd, len(msgs))
	_, err = q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range msgs {
			cmds[i] = p.XPendingExt(ctx, &redis.XPendingExtArgs{
				Stream: q.stream, Group: queueGroup, Start: m.ID, End: m.ID, Count: 1,
			})
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("claim", err)
	}
	items := make([]queue.Item, 0, len(msgs))
	for i, m := range msgs {
		attempts := 2
		if p, err := cmds[i].Result(); err == nil && len(p) == 1 {
			attempts = int(p[0].RetryCount)
		}
		items = append(items, toItem(m, attempts))
	}
	return items, nil
}

func toItem(m redis.XMessage, attempts int) queue.Item {
	it := queue.Item{ID: m.ID, Attempts: attempts}
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

// Ack removes processed entries.
func (q *Queue) Ack(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, q.stream, queueGroup, ids...)
		p.XDel(ctx, q.stream, ids...)
		return nil
	})
	if err != nil {
		return unavailable("ack", err)
	}
	return nil
}

// Fail records a failed attempt: the entry stays pending and is handed out
// again once idle RetryAfter, or moves to the dead letters after
// MaxAttempts.
func (q *Queue) Fail(ctx context.Context, it queue.Item) (dead bool, err error) {
	if it.Attempts < q.opts.MaxAttempts {
		return false, nil
	}
	_, err = q.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAdd(ctx, &redis.XAddArgs{Stream: q.dead, Values: map[string]any{
			queueField: it.Body, "id": it.ID, "attempts": it.Attempts, "t": time.Now().UnixMilli(),
		}})
		p.XAck(ctx, q.stream, queueGroup, it.ID)
		p.XDel(ctx, q.stream, it.ID)
		return nil
	})
	if err != nil {
		return false, unavailable("dead-letter", err)
	}
	return true, nil
}

// Stats returns the stream's length and the dead letters'.
func (q *Queue) Stats(ctx context.Context) (depth, dead int64, err error) {
	var l1, l2 *redis.IntCmd
	_, err = q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		l1 = p.XLen(ctx, q.stream)
		l2 = p.XLen(ctx, q.dead)
		return nil
	})
	if err != nil {
		return 0, 0, unavailable("stats", err)
	}
	return l1.Val(), l2.Val(), nil
}
