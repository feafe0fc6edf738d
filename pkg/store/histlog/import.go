package histlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/store/internal/segfile"
)

// ImportFunc adds one user's history to a log being imported into: the
// user's head and the retained events, oldest first, with their cursors'
// sequence numbers.
type ImportFunc func(user string, head uint64, events []*notification.Event) error

// Import fills an empty log from another store: the log takes over epoch,
// so cursors handed out by the other store stay valid, and each calls add
// once per user. Nothing is acknowledged until Import returns: a caller
// imports into a fresh directory and moves it into place afterwards.
func (s *Store) Import(ctx context.Context, epoch string, each func(add ImportFunc) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.writable(); err != nil {
		return fmt.Errorf("histlog import: %w", err)
	}
	if len(s.segs) != 1 || s.active.size != 0 {
		return errors.New("histlog import: the log is not empty")
	}
	if _, err := notification.ParseCursor(epoch + "-1"); err != nil {
		return fmt.Errorf("histlog import: epoch %q: %w", epoch, err)
	}
	if err := s.writeEpoch(epoch); err != nil {
		return fmt.Errorf("histlog import: %w", err)
	}
	buf := s.wbuf[:0]
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		base, err := s.write(buf)
		if err != nil {
			return err
		}
		for rest := buf; len(rest) > 0; {
			off := len(buf) - len(rest)
			body, next, ok := segfile.Next(rest)
			if !ok {
				return errBadRecord
			}
			rec, err := parseRecord(body)
			if err != nil {
				return err
			}
			s.restore(s.active, rec, uint32(base)+uint32(off))
			rest = next
		}
		buf = buf[:0]
		return nil
	}
	err := each(func(user string, head uint64, events []*notification.Event) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		last := uint64(0)
		for _, ev := range events {
			if err := checkEvent(ev); err != nil {
				return fmt.Errorf("user %q: %w", user, err)
			}
			if ev.User != user || ev.Cursor.Seq <= last || ev.Cursor.Seq > head {
				return fmt.Errorf("user %q: event %v out of order", user, ev.Cursor)
			}
			last = ev.Cursor.Seq
			buf = appendRecord(buf, kindEvent, user, ev.Cursor.Seq, ev.AppendEnvelope)
		}
		if head > last {
			buf = appendRecord(buf, kindHead, user, head, nil)
		}
		if len(buf) >= 4<<20 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	s.wbuf = nil
	if err != nil {
		return fmt.Errorf("histlog import: %w", err)
	}
	return nil
}
