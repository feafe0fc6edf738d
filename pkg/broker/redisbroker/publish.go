package redisbroker

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
)

// publishScript appends one event to its user's history and publishes it,
// atomically: an event in the stream has been published to the nodes
// subscribed at that moment, and a published event is in the stream.
//
// A missing meta hash means the history is new or was lost (expired,
// flushed, a Redis restart without persistence): the script starts a new
// epoch from ARGV and drops any stream left over, so cursors of the old
// history are recognised as foreign instead of pointing into the new one.
//
// The message is "<epoch> <seq> <envelope>": receivers order and dedupe by
// (epoch, seq) without decoding the envelope.
//
// KEYS: meta hash, stream.
// ARGV: channel, candidate epoch, max length, ttl ms, envelope, "1" to SPUBLISH.
// Returns {epoch, seq}.
var publishScript = redis.NewScript(`
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], '0-' .. seq, 'e', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
local msg = epoch .. ' ' .. seq .. ' ' .. ARGV[5]
if ARGV[6] == '1' then
  redis.call('SPUBLISH', ARGV[1], msg)
else
  redis.call('PUBLISH', ARGV[1], msg)
end
return {epoch, seq}
`)

// envelopeField is the stream entry field holding the event envelope.
const envelopeField = "e"

// scriptArgs are the script arguments that are the same for every event,
// converted once rather than per event.
type scriptArgs struct {
	maxLen, ttl, sharded any
}

func newScriptArgs(o Options) scriptArgs {
	sharded := "0"
	if o.Sharded {
		sharded = "1"
	}
	return scriptArgs{
		maxLen:  strconv.Itoa(o.Retention.MaxCount),
		ttl:     strconv.FormatInt(o.Retention.MaxAge.Milliseconds(), 10),
		sharded: sharded,
	}
}

// Publish appends each event to its user's history and publishes it, all
// events in one pipeline (a fan-out to many users costs one round trip per
// Redis node, not one per user), shared with the Publish calls made at the
// same moment. Each event is atomic on its own; when some fail, the others
// are appended and published, their cursors are set, and the error says
// how many failed. Cursors of failed events stay zero.
func (b *Broker) Publish(ctx context.Context, events []*notification.Event) error {
	if b.closed() {
		return fmt.Errorf("redisbroker publish: %w", broker.ErrClosed)
	}
	for _, ev := range events {
		if err := checkUser(ev.User); err != nil {
			return fmt.Errorf("redisbroker publish: %w", err)
		}
	}
	if len(events) == 0 {
		return nil
	}
	req := &publishReq{ctx: ctx, events: events, done: make(chan struct{})}
	select {
	case b.publishes <- req:
	case <-ctx.Done():
		return fmt.Errorf("redisbroker publish: %w", ctx.Err())
	case <-b.ctx.Done():
		return fmt.Errorf("redisbroker publish: %w", broker.ErrClosed)
	}
	select {
	case <-req.done:
	case <-ctx.Done():
		return fmt.Errorf("redisbroker publish: %w", ctx.Err())
	case <-b.ctx.Done():
		return fmt.Errorf("redisbroker publish: %w", broker.ErrClosed)
	}
	// The loop is done with req: its results are the caller's now.
	for i, cur := range req.cursors {
		events[i].Cursor = cur
	}
	return req.err
}

// publishReq is one Publish call waiting for the publish loop.
type publishReq struct {
	ctx     context.Context
	events  []*notification.Event
	cursors []notification.Cursor // set by the loop; zero for failed events
	err     error
	done    chan struct{} // closed when cursors and err are set
}

// maxPublishPipeline bounds the events that waiting Publish calls put in
// one pipeline (a single larger call still goes whole).
const maxPublishPipeline = 1024

// publishLoop runs waiting Publish calls in shared pipelines until Close.
func (b *Broker) publishLoop() {
	defer b.wg.Done()
	var batch []*publishReq
	for {
		batch = batch[:0]
		select {
		case <-b.ctx.Done():
			return
		case r := <-b.publishes:
			batch = append(batch, r)
		}
		n := len(batch[0].events)
	fill:
		for n < maxPublishPipeline {
			select {
			case r := <-b.publishes:
				batch = append(batch, r)
				n += len(r.events)
			default:
				break fill
			}
		}
		b.publishBatch(batch, n)
		clear(batch)
	}
}

// publishBatch publishes the events of every call in batch (n in all) and
// hands each call its cursors and error. A call whose context ended while
// it waited is not published.
func (b *Broker) publishBatch(batch []*publishReq, n int) {
	ctx, cancel := context.WithTimeout(b.ctx, opTimeout)
	defer cancel()
	all := make([]*notification.Event, 0, n)
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = fmt.Errorf("redisbroker publish: %w", err)
			close(r.done)
			continue
		}
		all = append(all, r.events...)
		live = append(live, r)
	}
	cursors := make([]notification.Cursor, len(all))
	errs := make([]error, len(all))
	pending := make([]int, len(all))
	for i := range pending {
		pending[i] = i
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		evs := make([]*notification.Event, len(pending))
		for j, i := range pending {
			evs[j] = all[i]
		}
		cmds := b.pipelinePublish(ctx, evs)
		var retry []int
		for j, cmd := range cmds {
			cur, err := cursorOf(cmd)
			switch {
			case err == nil:
				cursors[pending[j]] = cur
			case attempt == 0 && redis.HasErrorPrefix(err, "NOSCRIPT"):
				retry = append(retry, pending[j])
			default:
				errs[pending[j]] = err
			}
		}
		if len(retry) > 0 {
			// The server does not know the script yet (first use, restart,
			// SCRIPT FLUSH): load it and send only what it refused.
			if err := publishScript.Load(ctx, b.c).Err(); err != nil {
				for _, i := range retry {
					errs[i] = fmt.Errorf("load script: %w", err)
				}
				retry = nil
			}
		}
		pending = retry
	}
	off := 0
	for _, r := range live {
		end := off + len(r.events)
		r.cursors = cursors[off:end:end]
		var failed int
		var first error
		for _, err := range errs[off:end] {
			if err != nil {
				failed++
				if first == nil {
					first = err
				}
			}
		}
		if failed > 0 {
			r.err = fmt.Errorf("redisbroker publish: %d of %d events failed: %w", failed, len(r.events), first)
		}
		off = end
		close(r.done)
	}
}

// pipelinePublish sends one script call per event in a single pipeline. The
// pipeline's own error is ignored: every command carries its result.
//
// Every event gets its own candidate epoch, used only if its user has no
// history: then no two history lifetimes of one user can share an epoch,
// even if a history expired between two events of the same batch.
func (b *Broker) pipelinePublish(ctx context.Context, events []*notification.Event) []*redis.Cmd {
	pipe := b.c.Pipeline()
	cmds := make([]*redis.Cmd, len(events))
	for i, ev := range events {
		keys := []string{b.keys.meta(ev.User), b.keys.stream(ev.User)}
		cmds[i] = publishScript.EvalSha(ctx, pipe, keys,
			b.keys.channel(ev.User), notification.NewEpoch(), b.args.maxLen, b.args.ttl, ev.MarshalEnvelope(), b.args.sharded)
	}
	_, _ = pipe.Exec(ctx)
	return cmds
}

// cursorOf reads the script's {epoch, seq} reply.
func cursorOf(cmd *redis.Cmd) (notification.Cursor, error) {
	res, err := cmd.Slice()
	if err != nil {
		return notification.Cursor{}, err
	}
	if len(res) == 2 {
		epoch, ok1 := res[0].(string)
		seq, ok2 := res[1].(int64)
		if ok1 && ok2 && epoch != "" && seq > 0 {
			return notification.Cursor{Epoch: epoch, Seq: uint64(seq)}, nil
		}
	}
	return notification.Cursor{}, fmt.Errorf("unexpected script reply %v", res)
}
