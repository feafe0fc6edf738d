package redisbroker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

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
// Dedupe: a notification's id is recorded in the meta hash (field "i:<id>"
// holding its seq), so publishing the same id again, as a sender's retry
// after a lost reply does, appends and publishes nothing and answers the
// first seq. Every dedupeGeneration events the meta hash is renamed to the
// previous-generation key (its ids stay findable there) and a fresh one is
// started, so each user keeps at most two generations of ids. A duplicate
// rewrites its record, a write that puts it behind the original in the
// replication stream: a WAIT after it covers the original too.
//
// Cost: the Lua-to-Redis calls dominate the script's CPU, so a publish makes
// five (HMGET, HGET of the previous generation for a new id, HSET, XADD,
// PUBLISH). The stream is trimmed approximately (MAXLEN ~, whole stream
// nodes; History enforces the exact count), and the keys' expiry is
// refreshed only when it is near: it is set an eighth of the retention
// beyond what is needed, and field "x" of the meta hash says until when.
//
// KEYS: meta hash, stream, previous-generation ids.
// ARGV: channel, candidate epoch, max length, ttl ms, envelope, "1" to
// SPUBLISH, dedupe field ("" for none), now in unix ms.
// Returns {epoch, seq}.
var publishScript = redis.NewScript(`
local f = ARGV[7]
local m = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'x', f)
local epoch = m[1]
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2], KEYS[3])
elseif f ~= '' then
  local dup = m[4]
  if not dup then
    dup = redis.call('HGET', KEYS[3], f)
  end
  if dup then
    redis.call('HSET', KEYS[1], f, dup)
    return {epoch, tonumber(dup)}
  end
end
local seq = tostring(tonumber(m[2] or 0) + 1)
local x = tonumber(m[3] or 0)
if tonumber(seq) % ` + dedupeGenerationLua + ` == 0 then
  redis.call('RENAME', KEYS[1], KEYS[3])
  x = 0
end
local now, ttl = tonumber(ARGV[8]), tonumber(ARGV[4])
local fields = {KEYS[1], 'epoch', epoch, 'seq', seq}
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
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '0-' .. seq, 'e', ARGV[5])
if refresh then
  redis.call('PEXPIREAT', KEYS[1], x)
  redis.call('PEXPIREAT', KEYS[2], x)
end
local msg = epoch .. ' ' .. seq .. ' ' .. ARGV[5]
if ARGV[6] == '1' then
  redis.call('SPUBLISH', ARGV[1], msg)
else
  redis.call('PUBLISH', ARGV[1], msg)
end
return {epoch, tonumber(seq)}
`)

// dedupeGeneration is how many events of a user share one generation of
// recorded ids: a retry is recognised as long as fewer than this many other
// events of the user were published since its first try (and up to twice
// as many).
const (
	dedupeGeneration    = 128
	dedupeGenerationLua = "128"
)

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
	groups := b.groupByPrimary(ctx, all, errs)
	if len(groups) == 1 {
		b.publishGroup(ctx, groups[0], all, cursors, errs)
	} else {
		// One pipeline per primary, at once: each waits for its replicas.
		var wg sync.WaitGroup
		for _, g := range groups {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b.publishGroup(ctx, g, all, cursors, errs)
			}()
		}
		wg.Wait()
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

// A publishGroup is the events of a batch that go to one primary in one
// pipeline. With node set the pipeline runs on that primary's own
// connection and ends with a WAIT for its replicas.
type publishGroup struct {
	target redis.Cmdable
	node   *redis.Client
	idx    []int // into the batch
}

// groupByPrimary sorts the events by where they are written. Without
// MinReplicas everything goes through the broker's client in one pipeline.
// With it, on a Cluster each primary's events go to that primary's client;
// elsewhere to the direct client. An event whose primary is unknown fails
// in errs.
func (b *Broker) groupByPrimary(ctx context.Context, events []*notification.Event, errs []error) []*publishGroup {
	all := make([]int, len(events))
	for i := range all {
		all[i] = i
	}
	if b.opts.MinReplicas == 0 {
		return []*publishGroup{{target: b.c, idx: all}}
	}
	if cc := b.opts.Cluster; cc != nil {
		byNode := make(map[*redis.Client]*publishGroup)
		var groups []*publishGroup
		for i, ev := range events {
			node, err := cc.MasterForKey(ctx, b.keys.meta(ev.User))
			if err != nil {
				errs[i] = fmt.Errorf("%w: no primary for %q: %v", broker.ErrUnavailable, ev.User, err)
				continue
			}
			g := byNode[node]
			if g == nil {
				g = &publishGroup{target: node, node: node}
				byNode[node] = g
				groups = append(groups, g)
			}
			g.idx = append(g.idx, i)
		}
		return groups
	}
	direct := b.opts.Direct
	if direct == nil {
		direct = b.c
	}
	node, _ := direct.(*redis.Client)
	return []*publishGroup{{target: direct, node: node, idx: all}}
}

// publishGroup runs g's events and sets their cursors or errors. A script
// the server does not know is loaded and the refused events sent again.
// An event a Cluster node redirects (its slot moved or is moving) goes
// through the cluster-aware client instead, without WAIT: only the few
// events caught in a slot move lack the replica check.
func (b *Broker) publishGroup(ctx context.Context, g *publishGroup, all []*notification.Event, cursors []notification.Cursor, errs []error) {
	pending := g.idx
	var moved []int
	for attempt := 0; len(pending) > 0; attempt++ {
		want := 0
		if g.node != nil {
			want = min(b.opts.MinReplicas, b.replicas.of(ctx, g.node, b.opts.MinReplicas))
		}
		pipe := g.target.Pipeline()
		cmds := make([]*redis.Cmd, len(pending))
		for j, i := range pending {
			cmds[j] = b.publishCmd(ctx, pipe, all[i])
		}
		var wait *redis.Cmd
		if want > 0 {
			wait = pipe.Do(ctx, "WAIT", want, b.opts.ReplicaTimeout.Milliseconds())
		}
		// The pipeline's own error is ignored: every command carries its
		// result.
		_, _ = pipe.Exec(ctx)
		var unacked error
		if wait != nil {
			switch n, err := wait.Int64(); {
			case err != nil:
				unacked = fmt.Errorf("%w: waiting for replicas: %v", broker.ErrUnavailable, err)
			case n < int64(want):
				unacked = fmt.Errorf("%w: %d of %d replicas acknowledged within %s", broker.ErrUnavailable, n, want, b.opts.ReplicaTimeout)
			}
		}
		var retry []int
		for j, cmd := range cmds {
			i := pending[j]
			cur, err := cursorOf(cmd)
			switch {
			case err == nil && unacked == nil:
				cursors[i] = cur
			case err == nil:
				errs[i] = unacked
			case attempt == 0 && redis.HasErrorPrefix(err, "NOSCRIPT"):
				retry = append(retry, i)
			case g.node != nil && isRedirect(err):
				moved = append(moved, i)
			default:
				errs[i] = err
			}
		}
		if len(retry) > 0 {
			// The server does not know the script yet (first use, restart,
			// SCRIPT FLUSH): load it and send only what it refused.
			if err := publishScript.Load(ctx, g.target).Err(); err != nil {
				for _, i := range retry {
					errs[i] = fmt.Errorf("load script: %w", err)
				}
				retry = nil
			}
		}
		pending = retry
	}
	if len(moved) > 0 {
		b.publishGroup(ctx, &publishGroup{target: b.c, idx: moved}, all, cursors, errs)
	}
}

// publishCmd queues the publish script for ev on pipe.
//
// Every event gets its own candidate epoch, used only if its user has no
// history: then no two history lifetimes of one user can share an epoch,
// even if a history expired between two events of the same batch.
func (b *Broker) publishCmd(ctx context.Context, pipe redis.Pipeliner, ev *notification.Event) *redis.Cmd {
	keys := []string{b.keys.meta(ev.User), b.keys.stream(ev.User), b.keys.seen(ev.User)}
	dedupe := ""
	if ev.Kind == notification.KindNotification && ev.ID != "" {
		dedupe = "i:" + ev.ID
	}
	return publishScript.EvalSha(ctx, pipe, keys,
		b.keys.channel(ev.User), notification.NewEpoch(), b.args.maxLen, b.args.ttl, ev.MarshalEnvelope(), b.args.sharded,
		dedupe, strconv.FormatInt(time.Now().UnixMilli(), 10))
}

func isRedirect(err error) bool {
	return redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK") || redis.HasErrorPrefix(err, "TRYAGAIN")
}

// replicaRecheck is how long a primary's count of connected replicas is
// trusted before it is asked again.
const replicaRecheck = time.Second

// replicaGrace is how long a replica that disconnected is still waited
// for. A primary cut off from its replica and then lost takes with it what
// it accepted meanwhile, so publishes keep failing while a failover may
// still follow (Redis's default cluster-node-timeout is 15s); after it the
// primary goes on alone, its publishes accepted unreplicated.
const replicaGrace = 15 * time.Second

// replicaCounts tracks, per primary, the replicas WAIT asks for.
type replicaCounts struct {
	mu sync.Mutex
	m  map[*redis.Client]*replicaCount
}

type replicaCount struct {
	replid  string    // the primary's replication id: a new primary, a new count
	n       int       // replicas to wait for
	checked time.Time // when n was last asked for
	seen    time.Time // when n replicas were last connected
}

// of returns how many replicas to wait for on node: those connected, or
// more that were connected within replicaGrace. It asks the node when the
// count is older than replicaRecheck; unknown counts as fallback.
func (r *replicaCounts) of(ctx context.Context, node *redis.Client, fallback int) int {
	r.mu.Lock()
	c := r.m[node]
	if c != nil && time.Since(c.checked) < replicaRecheck {
		n := c.n
		r.mu.Unlock()
		return n
	}
	r.mu.Unlock()
	replid, n, err := connectedReplicas(ctx, node)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if c != nil {
			return c.n
		}
		return fallback
	}
	if r.m == nil {
		r.m = make(map[*redis.Client]*replicaCount)
	}
	now := time.Now()
	if c == nil || c.replid != replid || n >= c.n || now.Sub(c.seen) > replicaGrace {
		c = &replicaCount{replid: replid, n: n, seen: now}
		r.m[node] = c
	}
	c.checked = now
	return c.n
}

// connectedReplicas asks a primary for its replication id and how many
// replicas are connected to it.
func connectedReplicas(ctx context.Context, node *redis.Client) (replid string, n int, err error) {
	info, err := node.Info(ctx, "replication").Result()
	if err != nil {
		return "", 0, err
	}
	var role string
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "role":
			role = v
		case "master_replid":
			replid = v
		case "connected_slaves":
			n, err = strconv.Atoi(v)
		}
	}
	if role != "master" || err != nil {
		return "", 0, fmt.Errorf("unexpected replication info %q", info)
	}
	return replid, n, nil
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
