package redisbroker

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/notification"
)

// publishScript appends one event to a user's stream and publishes it, in
// one atomic step: an event in history has always been published, and a
// published event is always in history. A missing meta hash starts a new
// epoch (and drops any stream left from the old one), so cursors of a lost
// history are recognised.
//
// KEYS: meta, stream. ARGV: channel, new epoch, max length, ttl ms,
// envelope, "1" for sharded pub/sub.
var publishScript = redis.NewScript(`
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
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

// pipelineChunk bounds one pipeline, so a fan-out to many users is a few
// round trips without one huge buffer.
const pipelineChunk = 1000

// Publish appends and publishes every event, pipelined.
func (b *Broker) Publish(ctx context.Context, events []*notification.Event) error {
	if b.closed() {
		return errClosed()
	}
	for start := 0; start < len(events); start += pipelineChunk {
		end := min(start+pipelineChunk, len(events))
		if err := b.publishChunk(ctx, events[start:end]); err != nil {
			return err
		}
	}
	return nil
}

func (b *Broker) publishChunk(ctx context.Context, events []*notification.Event) error {
	cmds, err := b.runChunk(ctx, events)
	if err != nil && isNoScript(err) {
		if err := publishScript.Load(ctx, b.c).Err(); err != nil {
			return fmt.Errorf("redisbroker load script: %w", err)
		}
		// Only the events that failed for want of the script are retried:
		// the others were appended.
		var retry []*notification.Event
		for i, cmd := range cmds {
			if cmd.Err() != nil && isNoScript(cmd.Err()) {
				retry = append(retry, events[i])
			}
		}
		if len(retry) < len(events) {
			if err := b.assign(events, cmds, true); err != nil {
				return err
			}
		}
		cmds, err = b.runChunk(ctx, retry)
		events = retry
	}
	if err != nil {
		return fmt.Errorf("redisbroker publish: %w", err)
	}
	return b.assign(events, cmds, false)
}

func (b *Broker) runChunk(ctx context.Context, events []*notification.Event) ([]*redis.Cmd, error) {
	ttl := strconv.FormatInt(b.opts.Retention.MaxAge.Milliseconds(), 10)
	maxLen := strconv.Itoa(b.opts.Retention.MaxCount)
	sharded := "0"
	if b.opts.Sharded {
		sharded = "1"
	}
	pipe := b.c.Pipeline()
	cmds := make([]*redis.Cmd, len(events))
	var buf []byte
	for i, ev := range events {
		buf = ev.AppendEnvelope(buf[:0])
		cmds[i] = publishScript.EvalSha(ctx, pipe, []string{b.metaKey(ev.User), b.streamKey(ev.User)},
			b.channel(ev.User), notification.NewEpoch(), maxLen, ttl, string(buf), sharded)
	}
	_, err := pipe.Exec(ctx)
	return cmds, err
}

// assign sets each event's cursor from its script result. With skipFailed,
// events whose command failed are left for a retry.
func (b *Broker) assign(events []*notification.Event, cmds []*redis.Cmd, skipFailed bool) error {
	for i, cmd := range cmds {
		res, err := cmd.Slice()
		if err != nil {
			if skipFailed {
				continue
			}
			return fmt.Errorf("redisbroker publish: %w", err)
		}
		if len(res) != 2 {
			return fmt.Errorf("redisbroker publish: unexpected script result %v", res)
		}
		epoch, _ := res[0].(string)
		seq, _ := res[1].(int64)
		events[i].Cursor = notification.Cursor{Epoch: epoch, Seq: uint64(seq)}
	}
	return nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}
