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

func errClosed() error { return broker.ErrClosed }

func streamID(seq uint64) string { return "0-" + strconv.FormatUint(seq, 10) }

func seqOf(id string) (uint64, bool) {
	_, s, ok := strings.Cut(id, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// History reads the user's events after since, with the resume rules of
// broker.Broker.History; meta and range are read in one round trip.
func (b *Broker) History(ctx context.Context, user string, since notification.Cursor, limit int) ([]*notification.Event, notification.Cursor, error) {
	if limit <= 0 {
		limit = 1
	}
	pipe := b.c.Pipeline()
	meta := pipe.HMGet(ctx, b.metaKey(user), "epoch", "seq")
	var rng *redis.XMessageSliceCmd
	if since.IsZero() {
		rng = pipe.XRevRangeN(ctx, b.streamKey(user), "+", "-", int64(limit))
	} else {
		rng = pipe.XRangeN(ctx, b.streamKey(user), streamID(since.Seq+1), "+", int64(limit))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, notification.Cursor{}, fmt.Errorf("redisbroker history: %w", err)
	}
	vals := meta.Val()
	epoch, _ := vals[0].(string)
	seqStr, _ := vals[1].(string)
	headSeq, _ := strconv.ParseUint(seqStr, 10, 64)
	var head notification.Cursor
	if epoch != "" && headSeq > 0 {
		head = notification.Cursor{Epoch: epoch, Seq: headSeq}
	}
	msgs := rng.Val()
	cutoff := time.Now().Add(-b.opts.Retention.MaxAge)
	if since.IsZero() {
		slices.Reverse(msgs)
		events, err := b.decode(user, epoch, msgs)
		if err != nil {
			return nil, head, err
		}
		for len(events) > 0 && events[0].Created.Before(cutoff) {
			events = events[1:]
		}
		return events, head, nil
	}
	if since.Epoch != epoch || since.Seq > headSeq {
		return nil, head, broker.ErrReset
	}
	if since.Seq == headSeq {
		return nil, head, nil
	}
	events, err := b.decode(user, epoch, msgs)
	if err != nil {
		return nil, head, err
	}
	if len(events) == 0 || events[0].Cursor.Seq != since.Seq+1 || events[0].Created.Before(cutoff) {
		return nil, head, broker.ErrReset
	}
	return events, head, nil
}

func (b *Broker) decode(user, epoch string, msgs []redis.XMessage) ([]*notification.Event, error) {
	events := make([]*notification.Event, 0, len(msgs))
	for _, m := range msgs {
		seq, ok := seqOf(m.ID)
		env, _ := m.Values["e"].(string)
		if !ok || env == "" {
			return nil, fmt.Errorf("redisbroker: malformed stream entry %s", m.ID)
		}
		ev, err := notification.UnmarshalEnvelope(user, notification.Cursor{Epoch: epoch, Seq: seq}, []byte(env))
		if err != nil {
			return nil, fmt.Errorf("redisbroker: stream entry %s: %w", m.ID, err)
		}
		events = append(events, ev)
	}
	return events, nil
}

// fetchRange reads the events with sequence in [from, to] (to 0: to the
// end) from the user's stream, with the epoch the meta hash names now.
func (b *Broker) fetchRange(ctx context.Context, user string, from, to uint64) (string, []*notification.Event, error) {
	end := "+"
	if to > 0 {
		end = streamID(to)
	}
	pipe := b.c.Pipeline()
	meta := pipe.HGet(ctx, b.metaKey(user), "epoch")
	rng := pipe.XRange(ctx, b.streamKey(user), streamID(from), end)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return "", nil, fmt.Errorf("redisbroker backfill: %w", err)
	}
	epoch := meta.Val()
	events, err := b.decode(user, epoch, rng.Val())
	return epoch, events, err
}
