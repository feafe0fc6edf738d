package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/queue"
)

// The work queue is a set of Redis streams (partitions), each read
// through a consumer group: XADD on enqueue, XREADGROUP hands each entry to
// one node, XACK+XDEL when done. An entry whose node died stays pending and
// is claimed (XAUTOCLAIM) by whichever node asks after it has been idle
// RetryAfter; its delivery count rises with every hand-out, and past
// MaxAttempts it moves to its partition's dead-letter stream.
//
// An entry's partition is chosen from its dedupe key, so a retried webhook
// meets its dedupe key in the same partition. A partition's stream, dead
// letters and dedupe keys share one hash tag (see partition.go), so the
// enqueue script and the dead-letter transaction run on a Redis Cluster,
// and the partitions' tags lie in slots spread over the cluster: ingest is
// shared by its primaries instead of all landing on one.
//
// Every node reads every partition. On one Redis (or a Sentinel-watched
// primary) one XREADGROUP blocks on all the streams at once. On a Cluster
// streams of different slots cannot be read in one call, so a read sweeps
// the partitions without blocking (one pipelined round trip per primary)
// and then blocks on one of them, in rotation, for at most splitPoll before
// sweeping again: an idle node costs a few commands per worker per
// splitPoll, and a new entry waits at most about splitPoll.
//
// Partitions beyond this node's count that still hold entries (the count
// was lowered, or other nodes still run with a higher one) are found by a
// look at their lengths every drainCheckEvery and read like the others
// until they are empty, so changing the count loses nothing.
const (
	queueGroup      = "workers"
	queueField      = "b"
	splitPoll       = 200 * time.Millisecond
	drainCheckEvery = time.Minute
)

// enqueueScript claims the dedupe key and appends the body in one step, so
// a webhook is either queued and remembered or neither.
var enqueueScript = redis.NewScript(`
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then
  redis.call('XADD', KEYS[1], '*', 'b', ARGV[1], 't', ARGV[3])
  return 1
end
return 0`)

// QueueOptions configure a Redis work queue.
type QueueOptions struct {
	queue.Options
	// Partitions is how many streams the queue is spread over, 1 to
	// MaxPartitions (default 1: the single stream of earlier versions).
	// Every node of a deployment should use the same count; while they
	// differ (a rolling change) each node also drains the partitions
	// beyond its own count, so nothing is lost.
	Partitions int
}

// queuePart is one partition's keys.
type queuePart struct {
	index   int
	stream  string
	dead    string
	dedupe  string      // prefix of dedupe keys
	groupOK atomic.Bool // the consumer group is known to exist
}

// Queue is the Redis work queue; every node's Queue reads the same streams.
type Queue struct {
	c        redis.UniversalClient
	opts     queue.Options
	parts    []*queuePart // all MaxPartitions; the first n are written
	n        int
	consumer string

	split atomic.Bool   // the streams cannot be read in one call (a Cluster)
	next  atomic.Uint32 // rotates the partition a split read blocks on

	mu        sync.Mutex
	readable  []*queuePart // parts[:n] and the partitions being drained
	spare     []queue.Item // read beyond a caller's max: handed out first
	lastClaim time.Time
	lastDrain time.Time

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
func (s *Store) Queue(name string, opts QueueOptions) *Queue {
	n := min(max(opts.Partitions, 1), MaxPartitions)
	q := &Queue{
		c: s.c, opts: opts.Options.WithDefaults(), n: n,
		consumer: s.node,
		enqueues: make(chan *enqueueReq, maxEnqueuePipeline),
	}
	for i, tag := range partitionTags(name, MaxPartitions) {
		p := s.opts.Prefix + "{" + tag + "}:"
		q.parts = append(q.parts, &queuePart{index: i, stream: p + "q", dead: p + "dead", dedupe: p + "d:"})
	}
	q.readable = q.parts[:n:n]
	go q.enqueueLoop(s.ctx)
	return q
}

// noScript reports whether a script call of cmds found the script missing
// on its Redis.
func noScript(cmds []*redis.Cmd) bool {
	for _, c := range cmds {
		if c != nil && redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			return true
		}
	}
	return false
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
	cmds := make([]*redis.Cmd, len(batch))
	run := func(again bool) error {
		_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, r := range batch {
				part := q.parts[partitionOf(r.key, q.n)]
				keys := []string{part.stream, part.dedupe + r.key}
				switch {
				case !again:
					cmds[i] = enqueueScript.EvalSha(ctx, p, keys, r.body, ttl, r.at)
				case redis.HasErrorPrefix(cmds[i].Err(), "NOSCRIPT"):
					cmds[i] = enqueueScript.Eval(ctx, p, keys, r.body, ttl, r.at)
				}
			}
			return nil
		})
		return err
	}
	err := run(false)
	if err != nil && noScript(cmds) {
		// Redis lost its script cache (restart), or a primary never had
		// it: again there only, as the others have queued theirs.
		err = run(true)
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

// ensureGroups creates the consumer groups (and streams) of parts that
// have none yet; after Redis lost its data a group is created again on the
// next NOGROUP.
func (q *Queue) ensureGroups(ctx context.Context, parts []*queuePart) error {
	var missing []*queuePart
	for _, p := range parts {
		if !p.groupOK.Load() {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	cmds := make([]*redis.StatusCmd, len(missing))
	_, _ = q.c.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, p := range missing {
			cmds[i] = pl.XGroupCreateMkStream(ctx, p.stream, queueGroup, "0")
		}
		return nil
	})
	for i, p := range missing {
		if err := cmds[i].Err(); err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
			return err
		}
		p.groupOK.Store(true)
	}
	return nil
}

// groupLost notes that Redis lost the groups of parts (it answered
// NOGROUP), so the next read creates them again.
func groupLost(err error, parts ...*queuePart) {
	if err != nil && redis.HasErrorPrefix(err, "NOGROUP") {
		for _, p := range parts {
			p.groupOK.Store(false)
		}
	}
}

// entry splits an item ID into its partition and stream entry id.
func (q *Queue) entry(id string) (*queuePart, string) {
	if i := strings.IndexByte(id, '/'); i > 0 {
		if n, err := strconv.Atoi(id[:i]); err == nil && n >= 0 && n < len(q.parts) {
			return q.parts[n], id[i+1:]
		}
	}
	return q.parts[0], id
}

// Ack removes processed entries.
func (q *Queue) Ack(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			part, eid := q.entry(id)
			p.XAck(ctx, part.stream, queueGroup, eid)
			p.XDel(ctx, part.stream, eid)
		}
		return nil
	})
	if err != nil {
		return unavailable("ack", err)
	}
	return nil
}

// Fail records a failed attempt: the entry stays pending and is handed out
// again once idle RetryAfter, or moves to its partition's dead letters
// after MaxAttempts.
func (q *Queue) Fail(ctx context.Context, it queue.Item) (dead bool, err error) {
	if it.Attempts < q.opts.MaxAttempts {
		return false, nil
	}
	part, eid := q.entry(it.ID)
	_, err = q.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAdd(ctx, &redis.XAddArgs{Stream: part.dead, Values: map[string]any{
			queueField: it.Body, "id": it.ID, "attempts": it.Attempts, "t": time.Now().UnixMilli(),
		}})
		p.XAck(ctx, part.stream, queueGroup, eid)
		p.XDel(ctx, part.stream, eid)
		return nil
	})
	if err != nil {
		return false, unavailable("dead-letter", err)
	}
	return true, nil
}

// Stats returns the streams' lengths and the dead letters', summed over
// the partitions this node reads.
func (q *Queue) Stats(ctx context.Context) (depth, dead int64, err error) {
	q.mu.Lock()
	parts := q.readable
	q.mu.Unlock()
	lens := make([]*redis.IntCmd, 2*len(parts))
	_, err = q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, part := range parts {
			lens[2*i] = p.XLen(ctx, part.stream)
			lens[2*i+1] = p.XLen(ctx, part.dead)
		}
		return nil
	})
	if err != nil {
		return 0, 0, unavailable("stats", err)
	}
	for i := 0; i < len(lens); i += 2 {
		depth += lens[i].Val()
		dead += lens[i+1].Val()
	}
	return depth, dead, nil
}
