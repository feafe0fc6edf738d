package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
)

// History returns up to limit events of user after since, oldest first,
// and the head of the user's history, following the resume rules of
// broker.Broker: a non-zero since resumes only if it has the current epoch,
// is not past the head, and is the head or its successor is still retained
// (by count and by age). The meta hash and the range are read in one
// MULTI, so they describe the same moment.
func (b *Broker) History(ctx context.Context, user string, since notification.Cursor, limit int) ([]*notification.Event, notification.Cursor, error) {
	if b.closed() {
		return nil, notification.Cursor{}, fmt.Errorf("redisbroker history: %w", broker.ErrClosed)
	}
	if err := checkUser(user); err != nil {
		return nil, notification.Cursor{}, fmt.Errorf("redisbroker history: %w", err)
	}
	if limit <= 0 {
		limit = 1
	}
	var head notification.Cursor
	var msgs []redis.XMessage
	var err error
	if since.IsZero() {
		head, msgs, err = b.readNewest(ctx, user, limit)
	} else {
		head, msgs, err = b.readRange(ctx, user, streamID(since.Seq+1), "+", int64(limit))
	}
	if err != nil {
		return nil, notification.Cursor{}, fmt.Errorf("redisbroker history: %w", err)
	}
	events, err := decodeEntries(user, head.Epoch, msgs)
	if err != nil {
		return nil, head, fmt.Errorf("redisbroker history: %w", err)
	}
	events = dropTrimmed(events, head, b.opts.Retention.MaxCount)
	cutoff := time.Now().Add(-b.opts.Retention.MaxAge)
	if since.IsZero() {
		return dropAged(events, cutoff), head, nil
	}
	if !resumable(since, head, events, cutoff) {
		return nil, head, broker.ErrReset
	}
	return events, head, nil
}

// resumable applies the resume rules to a read made after since.
func resumable(since, head notification.Cursor, after []*notification.Event, cutoff time.Time) bool {
	if since.Epoch != head.Epoch || since.Seq > head.Seq {
		return false
	}
	if since.Seq == head.Seq {
		return true
	}
	return len(after) > 0 && after[0].Cursor.Seq == since.Seq+1 && !after[0].Created.Before(cutoff)
}

// dropTrimmed drops the events of an oldest-first list that are not among
// the newest maxCount of the history: the publish script trims the stream
// only approximately, by whole stream nodes, and may keep a few more.
func dropTrimmed(events []*notification.Event, head notification.Cursor, maxCount int) []*notification.Event {
	if head.Seq <= uint64(maxCount) {
		return events
	}
	oldest := head.Seq - uint64(maxCount) + 1
	i := 0
	for i < len(events) && events[i].Cursor.Seq < oldest {
		i++
	}
	return events[i:]
}

// dropAged drops the events created before cutoff from the front of an
// oldest-first list.
func dropAged(events []*notification.Event, cutoff time.Time) []*notification.Event {
	i := 0
	for i < len(events) && events[i].Created.Before(cutoff) {
		i++
	}
	return events[i:]
}

// readNewest reads the head and the newest count entries, oldest first.
func (b *Broker) readNewest(ctx context.Context, user string, count int) (notification.Cursor, []redis.XMessage, error) {
	var meta *redis.SliceCmd
	var rng *redis.XMessageSliceCmd
	_, err := b.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.HMGet(ctx, b.keys.meta(user), "epoch", "seq")
		rng = p.XRevRangeN(ctx, b.keys.stream(user), "+", "-", int64(count))
		return nil
	})
	if err != nil {
		return notification.Cursor{}, nil, err
	}
	head, err := headOf(meta.Val())
	msgs := rng.Val()
	slices.Reverse(msgs)
	return head, msgs, err
}

// readRange reads the head and the entries with IDs in [start, end], at
// most count of them (0: all).
func (b *Broker) readRange(ctx context.Context, user, start, end string, count int64) (notification.Cursor, []redis.XMessage, error) {
	var meta *redis.SliceCmd
	var rng *redis.XMessageSliceCmd
	_, err := b.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.HMGet(ctx, b.keys.meta(user), "epoch", "seq")
		if count > 0 {
			rng = p.XRangeN(ctx, b.keys.stream(user), start, end, count)
		} else {
			rng = p.XRange(ctx, b.keys.stream(user), start, end)
		}
		return nil
	})
	if err != nil {
		return notification.Cursor{}, nil, err
	}
	head, err := headOf(meta.Val())
	return head, rng.Val(), err
}

// readHead reads the user's head: zero when the user has no history.
func (b *Broker) readHead(ctx context.Context, user string) (notification.Cursor, error) {
	vals, err := b.c.HMGet(ctx, b.keys.meta(user), "epoch", "seq").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return notification.Cursor{}, err
	}
	return headOf(vals)
}

// headOf turns the meta hash's [epoch, seq] into the head cursor.
func headOf(vals []any) (notification.Cursor, error) {
	if len(vals) != 2 || vals[0] == nil {
		return notification.Cursor{}, nil
	}
	epoch, _ := vals[0].(string)
	seqStr, _ := vals[1].(string)
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if epoch == "" || err != nil {
		return notification.Cursor{}, fmt.Errorf("malformed history meta %v", vals)
	}
	return notification.Cursor{Epoch: epoch, Seq: seq}, nil
}

// decodeEntries turns stream entries into events of the given epoch.
func decodeEntries(user, epoch string, msgs []redis.XMessage) ([]*notification.Event, error) {
	events := make([]*notification.Event, 0, len(msgs))
	for _, m := range msgs {
		seq, ok := seqOf(m.ID)
		env, _ := m.Values[envelopeField].(string)
		if !ok || env == "" {
			return nil, fmt.Errorf("malformed stream entry %s of %q", m.ID, user)
		}
		ev, err := notification.UnmarshalEnvelope(user, notification.Cursor{Epoch: epoch, Seq: seq}, []byte(env))
		if err != nil {
			return nil, fmt.Errorf("stream entry %s of %q: %w", m.ID, user, err)
		}
		events = append(events, ev)
	}
	return events, nil
}

// streamID is the stream entry ID of seq: the script adds entries as 0-<seq>.
func streamID(seq uint64) string { return "0-" + strconv.FormatUint(seq, 10) }

func seqOf(id string) (uint64, bool) {
	ms, s, ok := strings.Cut(id, "-")
	if !ok || ms != "0" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n > 0
}
