package histlog

import (
	"context"
	"errors"
	"fmt"
	"github.com/heraldhq/herald/pkg/store/internal/segfile"
)

// Sweep trims every user's history to retention and deletes the segments
// left with no retained event. Appends trim by count the users they write
// to; Sweep is for age, and for users who receive nothing new. It works
// one shard of users at a time, so appends interleave with it, and stops
// early when ctx ends.
func (s *Store) Sweep(ctx context.Context) error {
	// An event whose time in whole seconds is below the cutoff's is older
	// than the cutoff whatever its fraction of a second.
	cutoff := seconds(s.now().Add(-s.opts.Retention.MaxAge))
	maxCount := s.opts.Retention.MaxCount
	for i := range s.index.shards {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("histlog sweep: %w", err)
		}
		sh := &s.index.shards[i]
		s.writeMu.Lock()
		if err := s.writable(); err != nil {
			s.writeMu.Unlock()
			return fmt.Errorf("histlog sweep: %w", err)
		}
		sh.mu.Lock()
		for _, u := range sh.users {
			n := max(0, len(u.locs)-maxCount)
			for n < len(u.locs) && u.locs[n].created < cutoff {
				n++
			}
			if n > 0 {
				u.trimFront(n, s.dropLoc)
			}
		}
		sh.mu.Unlock()
		s.writeMu.Unlock()
	}
	if err := s.deleteDeadSegments(ctx); err != nil {
		return fmt.Errorf("histlog sweep: %w", err)
	}
	return nil
}

// deleteDeadSegments deletes the segments, other than the active one,
// that no index entry points into. The heads of users whose newest record
// is in such a segment are first written again to the active segment.
func (s *Store) deleteDeadSegments(ctx context.Context) error {
	s.writeMu.Lock()
	if err := s.writable(); err != nil {
		s.writeMu.Unlock()
		return err
	}
	dead := make(map[uint32]*segment)
	for id, seg := range s.segs {
		if seg != s.active && seg.live.Load() == 0 {
			dead[id] = seg
		}
	}
	s.writeMu.Unlock()
	if len(dead) == 0 {
		return nil
	}
	for i := range s.index.shards {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.carryHeads(&s.index.shards[i], dead); err != nil {
			return err
		}
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.segMu.Lock()
	defer s.segMu.Unlock()
	var errs []error
	for id, seg := range dead {
		delete(s.segs, id)
		errs = append(errs, seg.f.Close(), segfile.Remove(s.dir, id))
	}
	errs = append(errs, segfile.SyncDir(s.dir))
	return errors.Join(errs...)
}

// carryHeads writes a head record to the active segment for each user of
// sh whose newest record is in a dead segment.
func (s *Store) carryHeads(sh *shard, dead map[uint32]*segment) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	sh.mu.RLock()
	buf := s.wbuf[:0]
	var carried []*userLog
	for user, u := range sh.users {
		if dead[u.headSeg] != nil && u.head > 0 {
			buf = appendRecord(buf, kindHead, user, u.head, nil)
			carried = append(carried, u)
		}
	}
	sh.mu.RUnlock()
	s.wbuf = buf
	if len(carried) == 0 {
		return nil
	}
	if _, err := s.write(buf); err != nil {
		return fmt.Errorf("carry heads: %w", err)
	}
	sh.mu.Lock()
	for _, u := range carried {
		u.headSeg = s.active.id
	}
	sh.mu.Unlock()
	return nil
}
