package queuelog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/heraldhq/herald/pkg/queue"
	"github.com/heraldhq/herald/pkg/store/internal/segfile"
)

// Enqueue stores body unless key was enqueued within the dedupe TTL; dup
// reports a duplicate. It returns once the item is on disk; concurrent
// calls share one write and data sync.
func (l *Log) Enqueue(ctx context.Context, key string, body []byte) (dup bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("queuelog enqueue: %w", err)
	}
	switch {
	case key == "" || len(key) > maxKey:
		return false, fmt.Errorf("queuelog enqueue: key of %d bytes (1 to %d allowed)", len(key), maxKey)
	case len(body) > segfile.MaxBody-2*maxKey:
		return false, fmt.Errorf("queuelog enqueue: body of %d bytes is larger than a record", len(body))
	}
	now := l.now()
	exp := now.Add(l.opts.DedupeTTL).UnixNano()

	// Reserve the key in memory, so a concurrent duplicate sees it, then
	// ask the Backing about keys written behind earlier. Keys leave memory
	// only after the Backing has them, so one of the two always knows.
	l.mu.Lock()
	if err := l.writable(); err != nil {
		l.mu.Unlock()
		return false, fmt.Errorf("queuelog enqueue: %w: %w", queue.ErrUnavailable, err)
	}
	if e, ok := l.keys[key]; ok && e > now.UnixNano() {
		l.mu.Unlock()
		return true, nil
	}
	l.keys[key] = exp
	l.mu.Unlock()
	has, err := l.backing.HasKey(key, now)

	l.mu.Lock()
	if err == nil && !has {
		err = l.writable()
	}
	if err != nil || has {
		l.forgetKey(key, exp)
		l.mu.Unlock()
		if err != nil {
			return false, fmt.Errorf("queuelog enqueue: %w: %w", queue.ErrUnavailable, err)
		}
		return true, nil
	}
	seq := l.nextSeq
	l.nextSeq++
	off := len(l.pending)
	l.pending = appendItem(l.pending, seq, 0, 0, now.UnixNano(), exp, key, body)
	size := int64(len(l.pending) - off)
	c := l.submit(func(err error, seg *segment, base int64) {
		if err != nil {
			l.forgetKey(key, exp)
			return
		}
		it := &item{seq: seq, seg: seg, off: base + int64(off), size: size, enqueued: now.UnixNano(), expires: exp, key: key}
		l.items[seq] = it
		seg.live++
		seg.used += size
		seg.keys++
		l.unsaved = append(l.unsaved, pendingKey{key: key, expires: exp, seg: seg})
		l.ready = append(l.ready, it)
	})
	l.mu.Unlock()
	<-c.done
	if c.err != nil {
		return false, fmt.Errorf("queuelog enqueue: %w: %w", queue.ErrUnavailable, c.err)
	}
	return false, nil
}

// forgetKey drops a key reservation that did not become an item. mu is held.
func (l *Log) forgetKey(key string, exp int64) {
	if l.keys[key] == exp {
		delete(l.keys, key)
	}
}

// Read hands out up to max items no other reader holds, waiting up to wait
// for one to arrive. Each handed-out item's raised attempt count is on
// disk first, so an item that crashes the process still reaches
// MaxAttempts.
func (l *Log) Read(ctx context.Context, max int, wait time.Duration) ([]queue.Item, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		items, next, wake, err := l.take(max)
		if err != nil || len(items) > 0 {
			return items, err
		}
		var retry <-chan time.Time
		if next > 0 {
			t := time.NewTimer(next)
			defer t.Stop()
			retry = t.C
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, nil
		case <-wake:
		case <-retry:
		}
	}
}

// take claims ready items. With none, it returns how long until the
// earliest delayed one is due (0: none is delayed) and a channel closed
// when an item may have become ready.
func (l *Log) take(max int) (items []queue.Item, next time.Duration, wake <-chan struct{}, err error) {
	l.mu.Lock()
	if err := l.writable(); err != nil {
		l.mu.Unlock()
		return nil, 0, nil, fmt.Errorf("queuelog read: %w: %w", queue.ErrUnavailable, err)
	}
	now := l.now().UnixNano()
	next = l.promote(now)
	var taken []*item
	for len(l.ready) > 0 && len(items) < max {
		it := l.ready[0]
		l.ready[0] = nil
		l.ready = l.ready[1:]
		if it.taken || it.ending || l.items[it.seq] != it {
			continue // handed out, or done, since it was queued here
		}
		if it.notBefore > now {
			l.delayed = append(l.delayed, it)
			continue
		}
		var body []byte
		body, l.readBuf, err = l.readBody(it, l.readBuf)
		if err != nil {
			l.ready = slices.Insert(l.ready, 0, it)
			break
		}
		it.taken = true
		it.attempts++
		l.pending = appendTake(l.pending, it.seq, it.attempts)
		taken = append(taken, it)
		items = append(items, queue.Item{
			ID: strconv.FormatUint(it.seq, 10), Body: slices.Clone(body),
			Attempts: it.attempts, Enqueued: time.Unix(0, it.enqueued),
		})
	}
	if len(taken) == 0 {
		wake = l.wake
		l.mu.Unlock()
		if err != nil {
			return nil, 0, nil, fmt.Errorf("queuelog read: %w: %w", queue.ErrUnavailable, err)
		}
		return nil, next, wake, nil
	}
	c := l.submit(func(err error, _ *segment, _ int64) {
		if err == nil {
			return
		}
		for _, it := range taken {
			it.taken = false
			it.attempts--
		}
		l.ready = append(taken, l.ready...)
	})
	l.mu.Unlock()
	<-c.done
	if c.err != nil {
		return nil, 0, nil, fmt.Errorf("queuelog read: %w: %w", queue.ErrUnavailable, c.err)
	}
	return items, 0, nil, nil
}

// promote moves the delayed items that are due to the ready list and
// returns how long until the next one is (0: none waits). mu is held.
func (l *Log) promote(now int64) (next time.Duration) {
	kept := l.delayed[:0]
	for _, it := range l.delayed {
		switch {
		case l.items[it.seq] != it || it.taken:
			// done, or handed out again since
		case it.notBefore <= now:
			l.ready = append(l.ready, it)
		default:
			kept = append(kept, it)
			if wait := time.Duration(it.notBefore - now); next == 0 || wait < next {
				next = wait
			}
		}
	}
	clear(l.delayed[len(kept):])
	l.delayed = kept
	return next
}

// Ack removes processed items.
func (l *Log) Ack(ctx context.Context, ids ...string) error {
	seqs, err := parseIDs(ids)
	if err != nil {
		return fmt.Errorf("queuelog ack: %w", err)
	}
	l.mu.Lock()
	if err := l.writable(); err != nil {
		l.mu.Unlock()
		return fmt.Errorf("queuelog ack: %w", err)
	}
	var ending []*item
	for _, seq := range seqs {
		it := l.items[seq]
		if it == nil || it.ending {
			continue
		}
		it.ending = true
		l.pending = appendDone(l.pending, seq)
		ending = append(ending, it)
	}
	if len(ending) == 0 {
		l.mu.Unlock()
		return nil
	}
	c := l.submit(func(err error, _ *segment, _ int64) {
		for _, it := range ending {
			it.ending = false
			if err == nil {
				l.drop(it)
			} else {
				l.release(it)
			}
		}
	})
	l.mu.Unlock()
	<-c.done
	if c.err != nil {
		return fmt.Errorf("queuelog ack: %w", c.err)
	}
	return nil
}

// Fail records a failed attempt of it: the item is handed out again after
// RetryAfter (doubling per attempt), or moved to the dead letters once it
// has had MaxAttempts.
func (l *Log) Fail(ctx context.Context, it queue.Item) (dead bool, err error) {
	seqs, err := parseIDs([]string{it.ID})
	if err != nil {
		return false, fmt.Errorf("queuelog fail: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writable(); err != nil {
		return false, fmt.Errorf("queuelog fail: %w", err)
	}
	x := l.items[seqs[0]]
	if x == nil || x.ending {
		return false, nil // acknowledged or dead already
	}
	attempts := max(x.attempts, it.Attempts)
	var body []byte
	body, l.readBuf, err = l.readBody(x, l.readBuf)
	if err != nil {
		l.release(x)
		return false, fmt.Errorf("queuelog fail: %w", err)
	}
	x.ending = true
	var c *commit
	if attempts >= l.opts.MaxAttempts {
		dead = true
		body = slices.Clone(body)
		l.mu.Unlock()
		err = l.backing.PutDead(DeadItem{Attempts: attempts, Enqueued: time.Unix(0, x.enqueued), Body: body})
		l.mu.Lock()
		if err != nil {
			x.ending = false
			l.release(x)
			return false, fmt.Errorf("queuelog fail: keep dead item: %w", err)
		}
		l.pending = appendDone(l.pending, x.seq)
		c = l.submit(func(err error, _ *segment, _ int64) {
			x.ending = false
			if err == nil {
				l.drop(x)
			} else {
				l.release(x) // dead already; at worst it dies twice
			}
		})
	} else {
		notBefore := l.now().Add(l.opts.RetryAfter << min(attempts-1, 10)).UnixNano()
		off := len(l.pending)
		l.pending = appendItem(l.pending, x.seq, attempts, notBefore, x.enqueued, x.expires, x.key, body)
		size := int64(len(l.pending) - off)
		c = l.submit(func(err error, seg *segment, base int64) {
			x.ending = false
			if err != nil {
				l.release(x)
				return
			}
			if l.items[x.seq] != x {
				return
			}
			l.move(x, seg, base+int64(off), size)
			x.attempts, x.notBefore, x.taken = attempts, notBefore, false
			l.delayed = append(l.delayed, x)
		})
	}
	l.mu.Unlock()
	<-c.done
	l.mu.Lock()
	if c.err != nil {
		return false, fmt.Errorf("queuelog fail: %w", c.err)
	}
	return dead, nil
}

// release hands a taken item out again, as after a restart: its ack or
// failure could not be written. mu is held.
func (l *Log) release(it *item) {
	if it.taken && l.items[it.seq] == it {
		it.taken = false
		l.ready = append(l.ready, it)
	}
}

// Stats returns how many items wait (including those being processed) and
// how many are dead.
func (l *Log) Stats(ctx context.Context) (depth, dead int64, err error) {
	l.mu.Lock()
	depth = int64(len(l.items))
	l.mu.Unlock()
	dead, err = l.backing.DeadCount()
	if err != nil {
		return 0, 0, fmt.Errorf("queuelog stats: %w", err)
	}
	return depth, dead, nil
}

func parseIDs(ids []string) ([]uint64, error) {
	out := make([]uint64, len(ids))
	for i, id := range ids {
		seq, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			return nil, errors.New("malformed item id " + strconv.Quote(id))
		}
		out[i] = seq
	}
	return out, nil
}
