package queuelog

import (
	"errors"
	"fmt"

	"github.com/heraldhq/herald/pkg/store/internal/segfile"
)

// applyFunc brings memory up to date with records of a commit, which wrote
// them at base in seg (err == nil) or failed. It runs with mu held.
type applyFunc func(err error, seg *segment, base int64)

// submit adds apply to the commit the pending records will be part of, and
// returns that commit. mu is held; the caller has appended its records.
func (l *Log) submit(apply applyFunc) *commit {
	l.applies = append(l.applies, apply)
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return l.commit
}

// commitLoop writes the pending records, one write and data sync for all
// that gathered while the previous one ran.
func (l *Log) commitLoop() {
	defer l.done.Done()
	for {
		select {
		case <-l.kick:
			l.commitPending()
		case <-l.stop:
			l.commitPending()
			return
		}
	}
}

func (l *Log) commitPending() {
	l.mu.Lock()
	buf, applies, c := l.pending, l.applies, l.commit
	if len(applies) == 0 {
		l.mu.Unlock()
		return
	}
	l.pending, l.applies, l.commit = l.spareBuf[:0], nil, newCommit()
	l.spareBuf = nil
	err := l.broken
	rolled := false
	if err == nil {
		rolled, err = l.makeRoom(int64(len(buf)))
	}
	seg := l.segs[len(l.segs)-1]
	base := seg.size
	l.mu.Unlock()

	if err == nil {
		err = l.write(seg, base, buf)
	}

	l.mu.Lock()
	if err == nil {
		seg.size = base + int64(len(buf))
	}
	for _, apply := range applies {
		apply(err, seg, base)
	}
	if rolled {
		l.carryForward()
	}
	dead := l.collectGarbage()
	if len(l.unsaved) >= 4096 {
		select {
		case l.saveNow <- struct{}{}:
		default:
		}
	}
	l.signalLocked()
	if cap(buf) <= 1<<20 {
		l.spareBuf = buf[:0]
	}
	l.mu.Unlock()
	c.err = err
	close(c.done)
	l.removeSegments(dead)
}

// makeRoom starts a new segment when n more bytes would take the active one
// past the segment size. mu is held.
func (l *Log) makeRoom(n int64) (rolled bool, err error) {
	active := l.segs[len(l.segs)-1]
	if active.size == 0 || active.size+n <= l.opts.SegmentSize {
		return false, nil
	}
	if active.size+n > 1<<32 {
		return false, fmt.Errorf("a commit of %d bytes does not fit a segment", n)
	}
	return true, l.roll()
}

// roll seals the active segment, if any, and creates the next one as the
// active one.
func (l *Log) roll() error {
	id := uint32(1)
	if len(l.segs) > 0 {
		active := l.segs[len(l.segs)-1]
		if err := segfile.Seal(active.f, active.size); err != nil {
			return fmt.Errorf("segment %d: %w", active.id, err)
		}
		active.alloc = active.size
		id = active.id + 1
	}
	f, err := segfile.Create(l.dir, id)
	if err != nil {
		return err
	}
	l.segs = append(l.segs, &segment{id: id, f: f})
	return nil
}

// write appends buf at base of seg and syncs it. On failure the segment is
// cut back to base; if even that fails, the log refuses further writes.
// Only the commit loop writes.
func (l *Log) write(seg *segment, base int64, buf []byte) error {
	if err := segfile.Write(seg.f, base, buf, &seg.alloc); err != nil {
		if terr := seg.f.Truncate(base); terr != nil {
			l.mu.Lock()
			l.broken = fmt.Errorf("queuelog: segment %d left with a partial write: %w", seg.id, errors.Join(err, terr))
			l.mu.Unlock()
		}
		seg.alloc = base
		return fmt.Errorf("write segment %d: %w", seg.id, err)
	}
	return nil
}

// carryForward rewrites the items still queued in old, mostly finished
// segments into the pending commit, so those segments can be deleted.
// Segments mostly full of queued items (a backlog) stay: copying them
// would only move the backlog. mu is held.
func (l *Log) carryForward() {
	if len(l.segs) < 3 {
		return
	}
	old := map[*segment]bool{}
	for _, seg := range l.segs[:len(l.segs)-2] {
		if seg.live > 0 && seg.used <= l.opts.SegmentSize/8 {
			old[seg] = true
		}
	}
	if len(old) == 0 {
		return
	}
	var carried []*item
	var spans []span
	var buf []byte
	for _, it := range l.items {
		if !old[it.seg] || it.ending || it.carrying {
			continue
		}
		var body []byte
		var err error
		body, buf, err = l.readBody(it, buf)
		if err != nil {
			l.opts.Logger.Warn("queue item not carried forward", "seq", it.seq, "err", err)
			continue
		}
		off := len(l.pending)
		l.pending = appendItem(l.pending, it.seq, it.attempts, it.notBefore, it.enqueued, it.expires, it.key, body)
		spans = append(spans, span{off, len(l.pending) - off})
		it.carrying = true
		carried = append(carried, it)
	}
	if len(carried) == 0 {
		return
	}
	l.submit(func(err error, seg *segment, base int64) {
		for i, it := range carried {
			it.carrying = false
			if err != nil || l.items[it.seq] != it {
				continue
			}
			l.move(it, seg, base+int64(spans[i].off), int64(spans[i].size))
		}
	})
}

// span is where a record sits in the pending buffer.
type span struct{ off, size int }

// move points it at its newest item record. mu is held.
func (l *Log) move(it *item, seg *segment, off, size int64) {
	it.seg.live--
	it.seg.used -= it.size
	it.seg, it.off, it.size = seg, off, size
	seg.live++
	seg.used += size
}

// readBody reads the body of it's newest item record, using buf (grown as
// needed, and returned) to read into; the body aliases it. mu is held.
func (l *Log) readBody(it *item, buf []byte) (body, _ []byte, err error) {
	rec, buf, err := segfile.ReadAt(it.seg.f, it.off, buf)
	if err != nil {
		return nil, buf, fmt.Errorf("segment %d: %w", it.seg.id, err)
	}
	r, err := parseRecord(rec)
	if err != nil || r.kind != kindItem || r.seq != it.seq {
		return nil, buf, fmt.Errorf("segment %d offset %d: record is not item %d", it.seg.id, it.off, it.seq)
	}
	return r.body, buf, nil
}

// collectGarbage takes the oldest segments off the log while they hold no
// queued item and no key waiting to be written behind: segments go oldest
// first, so a done record is never lost while the item it ends is kept.
// mu is held; the caller removes the files.
func (l *Log) collectGarbage() (dead []*segment) {
	for len(l.segs) > 1 && l.segs[0].live == 0 && l.segs[0].keys == 0 {
		dead = append(dead, l.segs[0])
		l.segs[0] = nil
		l.segs = l.segs[1:]
	}
	return dead
}

func (l *Log) removeSegments(dead []*segment) {
	if len(dead) == 0 {
		return
	}
	var errs []error
	for _, seg := range dead {
		errs = append(errs, seg.f.Close(), segfile.Remove(l.dir, seg.id))
	}
	errs = append(errs, segfile.SyncDir(l.dir))
	if err := errors.Join(errs...); err != nil {
		l.opts.Logger.Warn("queue segments not removed", "err", err)
	}
}

// signalLocked wakes the readers waiting for an item. mu is held.
func (l *Log) signalLocked() {
	close(l.wake)
	l.wake = make(chan struct{})
}
