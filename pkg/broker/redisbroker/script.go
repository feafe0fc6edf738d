package redisbroker

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/redisslot"
)

// publishScript appends events to their users' histories and publishes
// them, each atomically: an event in the stream has been published to the
// nodes subscribed at that moment, and a published event is in the stream.
// One call carries up to maxScriptEvents events (of any users on a single
// Redis, of one slot on a Cluster): the cost of running a script at all is
// then shared, which is about a sixth of its Redis CPU per event.
//
// A missing meta hash means the history is new or was lost (expired,
// flushed, a Redis restart without persistence): the script starts a new
// epoch from the event's candidate and drops any stream left over, so
// cursors of the old history are recognised as foreign instead of pointing
// into the new one.
//
// The message is "<epoch> <seq> <envelope>": receivers order and dedupe by
// (epoch, seq) without decoding the envelope.
//
// Dedupe: a notification's id is recorded in the meta hash (field "i:<id>"
// holding its seq), so publishing the same id again, as a sender's retry
// after a lost reply does, appends and publishes nothing and answers the
// first seq. Every dedupeGeneration events the meta hash is renamed to the
// previous-generation key (its ids stay findable there) and a fresh one is
// started, so each user keeps at most two generations of ids. A duplicate
// rewrites its record, a write that puts it behind the original in the
// replication stream: a WAIT after it covers the original too.
//
// Cost: the Lua-to-Redis calls dominate the script's CPU, so an event makes
// five (HMGET, HGET of the previous generation for a new id, HSET, XADD,
// PUBLISH). The stream is trimmed approximately (MAXLEN ~, whole stream
// nodes; History enforces the exact count), and the keys' expiry is
// refreshed only when it is near: it is set an eighth of the retention
// beyond what is needed, and field "x" of the meta hash says until when.
//
// Each event runs under pcall: one that fails (a key of the wrong type, an
// out-of-memory refusal) answers its error and the others go on.
//
// KEYS: per event its meta hash, stream and previous-generation ids.
// ARGV: max length, ttl ms, "1" to SPUBLISH, now in unix ms; then per event
// its channel, candidate epoch, envelope and dedupe field ("" for none).
// Returns per event {epoch, seq}, or {error} for one that failed.
var publishScript = redis.NewScript(`
local maxlen, ttl, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local pub = 'PUBLISH'
if ARGV[3] == '1' then pub = 'SPUBLISH' end
local function one(mk, sk, dk, ch, cand, env, f)
  local m = redis.call('HMGET', mk, 'epoch', 'seq', 'x', f)
  local epoch = m[1]
  local fresh = not epoch
  if fresh then
    epoch = cand
    redis.call('DEL', sk, dk)
  elseif f ~= '' then
    local dup = m[4]
    if not dup then
      dup = redis.call('HGET', dk, f)
    end
    if dup then
      redis.call('HSET', mk, f, dup)
      return {epoch, tonumber(dup)}
    end
  end
  local n = tonumber(m[2] or 0) + 1
  local seq = tostring(n)
  local x = tonumber(m[3] or 0)
  if n % ` + dedupeGenerationLua + ` == 0 then
    redis.call('RENAME', mk, dk)
    fresh, x = true, 0
  end
  local fields = {mk, 'seq', seq}
  if fresh then
    fields[4], fields[5] = 'epoch', epoch
  end
  local refresh = x < now + ttl
  if refresh then
    x = tostring(now + ttl + math.floor(ttl / 8))
    fields[#fields + 1] = 'x'
    fields[#fields + 1] = x
  end
  if f ~= '' then
    fields[#fields + 1] = f
    fields[#fields + 1] = seq
  end
  redis.call('HSET', unpack(fields))
  redis.call('XADD', sk, 'MAXLEN', '~', maxlen, '0-' .. seq, 'e', env)
  if refresh then
    redis.call('PEXPIREAT', mk, x)
    redis.call('PEXPIREAT', sk, x)
  end
  redis.call(pub, ch, epoch .. ' ' .. seq .. ' ' .. env)
  return {epoch, n}
end
local out = {}
for i = 0, #KEYS / 3 - 1 do
  local a = 5 + i * 4
  local ok, r = pcall(one, KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3], ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
  if not ok then
    if type(r) == 'table' then r = r.err end
    r = {tostring(r)}
  end
  out[#out + 1] = r
end
return out
`)

// dedupeGeneration is how many events of a user share one generation of
// recorded ids: a retry is recognised as long as fewer than this many other
// events of the user were published since its first try (and up to twice
// as many).
const (
	dedupeGeneration    = 128
	dedupeGenerationLua = "128"
)

// maxScriptEvents bounds the events of one script call: Redis runs nothing
// else meanwhile, and 32 events take it well under a millisecond.
const maxScriptEvents = 32

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

// scriptChunks splits the events at idx (into all) into the events of each
// script call, in order. Unless anySlot, a call's events share a slot, as
// a Cluster requires of a script's keys; the events of one user are in
// order across calls, since they share a slot and calls run in order.
func scriptChunks(k keyspace, all []*notification.Event, idx []int, anySlot bool) [][]int {
	var chunks [][]int
	if anySlot {
		for len(idx) > 0 {
			n := min(len(idx), maxScriptEvents)
			chunks = append(chunks, idx[:n:n])
			idx = idx[n:]
		}
		return chunks
	}
	open := make(map[int]int) // slot → its chunk still taking events
	for _, i := range idx {
		slot := redisslot.Of(k.meta(all[i].User))
		c, ok := open[slot]
		if !ok || len(chunks[c]) == maxScriptEvents {
			c = len(chunks)
			chunks = append(chunks, nil)
			open[slot] = c
		}
		chunks[c] = append(chunks[c], i)
	}
	return chunks
}

// publishCmd queues one script call for the events at idx on pipe.
//
// Every event gets its own candidate epoch, used only if its user has no
// history: then no two history lifetimes of one user can share an epoch,
// even if a history expired between two events of the same batch.
func (b *Broker) publishCmd(ctx context.Context, pipe redis.Pipeliner, all []*notification.Event, idx []int) *redis.Cmd {
	keys := make([]string, 0, 3*len(idx))
	args := make([]any, 0, 4+4*len(idx))
	args = append(args, b.args.maxLen, b.args.ttl, b.args.sharded, strconv.FormatInt(time.Now().UnixMilli(), 10))
	for _, i := range idx {
		ev := all[i]
		keys = append(keys, b.keys.meta(ev.User), b.keys.stream(ev.User), b.keys.seen(ev.User))
		dedupe := ""
		if ev.Kind == notification.KindNotification && ev.ID != "" {
			dedupe = "i:" + ev.ID
		}
		args = append(args, b.keys.channel(ev.User), notification.NewEpoch(), ev.MarshalEnvelope(), dedupe)
	}
	return publishScript.EvalSha(ctx, pipe, keys, args...)
}

// cursorsOf reads a script call's reply for n events: each event's cursor,
// or its own error.
func cursorsOf(cmd *redis.Cmd, n int) ([]notification.Cursor, []error, error) {
	res, err := cmd.Slice()
	if err != nil {
		return nil, nil, err
	}
	if len(res) != n {
		return nil, nil, fmt.Errorf("script answered %d results for %d events", len(res), n)
	}
	curs := make([]notification.Cursor, n)
	errs := make([]error, n)
	for j, r := range res {
		curs[j], errs[j] = cursorOf(r)
	}
	return curs, errs, nil
}

// cursorOf reads one event's {epoch, seq} or {error}.
func cursorOf(r any) (notification.Cursor, error) {
	v, _ := r.([]any)
	switch len(v) {
	case 2:
		epoch, ok1 := v[0].(string)
		seq, ok2 := v[1].(int64)
		if ok1 && ok2 && epoch != "" && seq > 0 {
			return notification.Cursor{Epoch: epoch, Seq: uint64(seq)}, nil
		}
	case 1:
		if msg, ok := v[0].(string); ok {
			return notification.Cursor{}, fmt.Errorf("publish script: %s", msg)
		}
	}
	return notification.Cursor{}, fmt.Errorf("unexpected script reply %v", r)
}
