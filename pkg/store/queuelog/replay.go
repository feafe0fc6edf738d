package queuelog

import (
	"errors"
	"fmt"
	"slices"

	"github.com/heraldhq/herald/pkg/store/internal/segfile"
)

// load replays every segment into the queue and opens the segment new
// records go to. Items are handed out in seq order after a restart, those
// that were being processed when the node stopped included.
func (l *Log) load() error {
	ids, err := segfile.List(l.dir)
	if err != nil {
		return err
	}
	now := l.now().UnixNano()
	for i, id := range ids {
		f, err := segfile.Open(l.dir, id)
		if err != nil {
			return err
		}
		seg := &segment{id: id, f: f}
		l.segs = append(l.segs, seg)
		end, err := segfile.Scan(f, func(off int64, body []byte) error {
			r, err := parseRecord(body)
			if err != nil {
				return err
			}
			l.restore(seg, off, int64(segfile.Header+len(body)), &r, now)
			return nil
		})
		if err != nil {
			if i != len(ids)-1 || !errors.Is(err, segfile.ErrBadRecord) {
				return fmt.Errorf("segment %d: %w", id, err)
			}
			if err := segfile.CutTail(f, end); err != nil {
				return fmt.Errorf("segment %d: %w", id, err)
			}
		}
		seg.size = end
		if seg.alloc, err = segfile.Size(f); err != nil {
			return fmt.Errorf("segment %d: %w", id, err)
		}
	}
	if len(l.segs) == 0 {
		if err := l.roll(); err != nil {
			return err
		}
	}
	seqs := make([]uint64, 0, len(l.items))
	for seq := range l.items {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		it := l.items[seq]
		if it.notBefore > now {
			l.delayed = append(l.delayed, it)
		} else {
			l.ready = append(l.ready, it)
		}
	}
	return nil
}

// restore applies one record read back from seg.
func (l *Log) restore(seg *segment, off, size int64, r *record, now int64) {
	l.nextSeq = max(l.nextSeq, r.seq+1)
	it := l.items[r.seq]
	switch r.kind {
	case kindItem:
		if it == nil {
			it = &item{seq: r.seq}
			l.items[r.seq] = it
		} else {
			it.seg.live--
			it.seg.used -= it.size
		}
		it.seg, it.off, it.size = seg, off, size
		seg.live++
		seg.used += size
		it.attempts = max(it.attempts, int(r.attempts))
		it.notBefore, it.enqueued, it.expires, it.key = r.notBefore, r.enqueued, r.expires, string(r.key)
		if it.key != "" && it.expires > now {
			l.keys[it.key] = max(l.keys[it.key], it.expires)
			l.unsaved = append(l.unsaved, pendingKey{key: it.key, expires: it.expires, seg: seg})
			seg.keys++
		}
	case kindTake:
		if it != nil {
			it.attempts = max(it.attempts, int(r.attempts))
		}
	case kindDone:
		if it != nil {
			l.drop(it)
		}
	}
}

// drop forgets a done item. mu is held (or the log is loading).
func (l *Log) drop(it *item) {
	delete(l.items, it.seq)
	it.seg.live--
	it.seg.used -= it.size
}
