package redisbroker

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
)

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
		chunks := scriptChunks(b.keys, all, pending, b.anySlot)
		cmds := make([]*redis.Cmd, len(chunks))
		for j, c := range chunks {
			cmds[j] = b.publishCmd(ctx, pipe, all, c)
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
			c := chunks[j]
			curs, evErrs, err := cursorsOf(cmd, len(c))
			switch {
			case err == nil:
				for k, i := range c {
					switch {
					case evErrs[k] != nil:
						errs[i] = evErrs[k]
					case unacked != nil:
						errs[i] = unacked
					default:
						cursors[i] = curs[k]
					}
				}
			case attempt == 0 && redis.HasErrorPrefix(err, "NOSCRIPT"):
				retry = append(retry, c...)
			case g.node != nil && isRedirect(err):
				moved = append(moved, c...)
			default:
				for _, i := range c {
					errs[i] = err
				}
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

func isRedirect(err error) bool {
	return redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK") || redis.HasErrorPrefix(err, "TRYAGAIN")
}
