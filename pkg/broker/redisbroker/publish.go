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
// Redis node, not one per user). Each event is atomic on its own; when some
// fail, the others are appended and published, their cursors are set, and
// the error says how many failed. Cursors of failed events stay zero.
func (b *Broker) Publish(ctx context.Context, events []*notification.Event) error {
	if b.closed() {
		return fmt.Errorf("redisbroker publish: %w", broker.ErrClosed)
	}
	for _, ev := range events {
		if err := checkUser(ev.User); err != nil {
			return fmt.Errorf("redisbroker publish: %w", err)
		}
	}
	pending := events
	for attempt := 0; len(pending) > 0; attempt++ {
		cmds := b.pipelinePublish(ctx, pending)
		retry, err := assignCursors(pending, cmds, attempt == 0)
		if err != nil {
			return err
		}
		if len(retry) > 0 {
			// The server does not know the script yet (first use, restart,
			// SCRIPT FLUSH): load it and send only what it refused.
			if err := publishScript.Load(ctx, b.c).Err(); err != nil {
				return fmt.Errorf("redisbroker publish: load script: %w", err)
			}
		}
		pending = retry
	}
	return nil
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

// assignCursors sets the cursor of every event whose script ran. With
// collectNoScript, events refused for want of the script are returned for
// a retry instead of counting as failures.
func assignCursors(events []*notification.Event, cmds []*redis.Cmd, collectNoScript bool) (retry []*notification.Event, err error) {
	var failed int
	var firstErr error
	for i, cmd := range cmds {
		cur, cerr := cursorOf(cmd)
		switch {
		case cerr == nil:
			events[i].Cursor = cur
		case collectNoScript && redis.HasErrorPrefix(cerr, "NOSCRIPT"):
			retry = append(retry, events[i])
		default:
			failed++
			if firstErr == nil {
				firstErr = cerr
			}
		}
	}
	if failed > 0 {
		return nil, fmt.Errorf("redisbroker publish: %d of %d events failed: %w", failed, len(events), firstErr)
	}
	return retry, nil
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
