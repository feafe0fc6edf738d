package boltstore

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// clock is a settable time source for retention and expiry tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// openAt opens a store at path and closes it when the test ends.
func openAt(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// openTemp opens a store in a fresh directory with a fake clock.
func openTemp(t *testing.T, opts Options) (*Store, *clock) {
	t.Helper()
	s := openAt(t, filepath.Join(t.TempDir(), "herald.db"), opts)
	c := &clock{t: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	s.now = c.now
	return s, c
}

func TestOpenCreatesAnAlphanumericEpoch(t *testing.T) {
	s, _ := openTemp(t, Options{})
	epoch := s.Epoch()
	if len(epoch) != 10 || !validEpoch([]byte(epoch)) {
		t.Fatalf("epoch %q", epoch)
	}
	other, _ := openTemp(t, Options{})
	if other.Epoch() == epoch {
		t.Fatalf("two new stores share epoch %q", epoch)
	}
}

func TestEpochAndSettingsSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	ctx := context.Background()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "vapid", []byte("keys")); err != nil {
		t.Fatal(err)
	}
	if _, fresh, err := s.Reserve(ctx, "req-1", "h", time.Hour); err != nil || !fresh {
		t.Fatalf("reserve: %v %v", fresh, err)
	}
	if err := s.Complete(ctx, "req-1", []byte("result"), time.Hour); err != nil {
		t.Fatal(err)
	}
	epoch := s.Epoch()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path, Options{})
	if s.Epoch() != epoch {
		t.Fatalf("epoch changed across restart: %s → %s", epoch, s.Epoch())
	}
	if v, err := s.Get(ctx, "vapid"); err != nil || string(v) != "keys" {
		t.Fatalf("setting after restart: %q %v", v, err)
	}
	if prior, fresh, err := s.Reserve(ctx, "req-1", "h", time.Hour); err != nil || fresh || string(prior) != "result" {
		t.Fatalf("idempotency key after restart: %q %v %v", prior, fresh, err)
	}
}

func TestSecondOpenFailsWithErrLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	openAt(t, path, Options{})
	start := time.Now()
	_, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if waited := time.Since(start); waited > 30*time.Second {
		t.Fatalf("second open took %s", waited)
	}
}

func TestOpenRejectsNewerFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte(strconv.Itoa(formatVersion+1)))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path, Options{}); err == nil {
		_ = s.Close()
		t.Fatal("opened a file of a newer format")
	}
}

func TestOpenFailsInMissingDirectory(t *testing.T) {
	if s, err := Open(filepath.Join(t.TempDir(), "missing", "herald.db"), Options{}); err == nil {
		_ = s.Close()
		t.Fatal("opened a file in a missing directory")
	}
}

func TestCallsAfterCloseFail(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "herald.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("ready while open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(ctx); err == nil {
		t.Error("ready after close")
	}
	if _, _, err := s.Reserve(ctx, "k", "h", time.Minute); err == nil {
		t.Error("reserve after close")
	}
}

func TestCanceledContextFailsCalls(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Sweep(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("sweep: %v", err)
	}
	if err := s.Ready(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("ready: %v", err)
	}
}
