package boltstore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/store/storetest"
)

func TestIdempotency(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "h.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.Idempotency(t, s)
}

func TestHistoryAndEpochSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ev, _ := notification.NewEvent(&notification.Notification{ID: "n1", User: "a", Title: "kept", CreatedAt: time.Now()})
	if err := s.Append(ctx, []*notification.Event{ev}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	epoch := s.Epoch()
	s.Close()

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Epoch() != epoch {
		t.Fatalf("epoch changed across restart: %s → %s", epoch, s.Epoch())
	}
	evs, head, err := s.Range(ctx, "a", notification.Cursor{}, 10)
	if err != nil || len(evs) != 1 || evs[0].ID != "n1" || head != ev.Cursor {
		t.Fatalf("after restart: %v %v %v", evs, head, err)
	}
	if v, err := s.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("kv: %q %v", v, err)
	}
	next, _ := notification.NewEvent(&notification.Notification{ID: "n2", User: "a", CreatedAt: time.Now()})
	if err := s.Append(ctx, []*notification.Event{next}); err != nil || next.Cursor.Seq != 2 {
		t.Fatalf("sequence after restart: %v %v", next.Cursor, err)
	}
}

func TestSecondProcessGetsClearError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second open: %v", err)
	}
}

func TestSweepEmptiesAgedHistoriesButKeepsSequence(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "h.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	ev, _ := notification.NewEvent(&notification.Notification{ID: "n1", User: "a", CreatedAt: time.Now()})
	_ = s.Append(ctx, []*notification.Event{ev})
	s.now = func() time.Time { return time.Now().Add(8 * 24 * time.Hour) }
	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	evs, head, err := s.Range(ctx, "a", notification.Cursor{}, 10)
	if err != nil || len(evs) != 0 || head.Seq != 1 {
		t.Fatalf("after sweep: %v head %v %v", evs, head, err)
	}
}
