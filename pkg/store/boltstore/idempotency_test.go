package boltstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/pkg/store/storetest"
)

func TestIdempotencySharedBehaviour(t *testing.T) {
	s, _ := openTemp(t, Options{})
	s.now = time.Now // the shared test sleeps through real expiry
	storetest.Idempotency(t, s)
}

func TestIdempotencyStates(t *testing.T) {
	s, clk := openTemp(t, Options{})
	ctx := context.Background()
	const ttl = time.Minute
	type want struct {
		prior string // "<nil>" for nil
		fresh bool
	}
	show := func(prior []byte) string {
		if prior == nil {
			return "<nil>"
		}
		return string(prior)
	}
	steps := []struct {
		name string
		do   func() error // runs before the Reserve
		key  string
		want want
	}{
		{"first reserve owns the key", nil, "k", want{"<nil>", true}},
		{"in progress", nil, "k", want{"<nil>", false}},
		{"in progress until just before expiry", func() error { clk.advance(ttl - time.Nanosecond); return nil }, "k", want{"<nil>", false}},
		{"an expired reservation is absent", func() error { clk.advance(time.Nanosecond); return nil }, "k", want{"<nil>", true}},
		{"completed", func() error { return s.Complete(ctx, "k", []byte(`{"ok":1}`), ttl) }, "k", want{`{"ok":1}`, false}},
		{"completed with an empty result", func() error { return s.Complete(ctx, "k", nil, ttl) }, "k", want{"", false}},
		{"an expired result is absent", func() error { clk.advance(ttl); return nil }, "k", want{"<nil>", true}},
		{"released", func() error { return s.Release(ctx, "k", "h") }, "k", want{"<nil>", true}},
		{"keys are independent", nil, "other", want{"<nil>", true}},
	}
	for _, st := range steps {
		if st.do != nil {
			if err := st.do(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		}
		prior, fresh, err := s.Reserve(ctx, st.key, "h", ttl)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := (want{show(prior), fresh}); got != st.want {
			t.Fatalf("%s: got %+v, want %+v", st.name, got, st.want)
		}
	}
}

func TestIdempotencyRejectsBadArguments(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx := context.Background()
	if _, _, err := s.Reserve(ctx, "k", "h", 0); err == nil {
		t.Error("reserve with zero ttl accepted")
	}
	if _, _, err := s.Reserve(ctx, "", "h", time.Minute); err == nil {
		t.Error("reserve of an empty key accepted")
	}
	if err := s.Complete(ctx, "k", nil, -time.Second); err == nil {
		t.Error("complete with negative ttl accepted")
	}
}

func TestConcurrentReserveHasOneOwner(t *testing.T) {
	s, _ := openTemp(t, Options{})
	var owners atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, fresh, err := s.Reserve(context.Background(), "k", "h", time.Minute)
			if err != nil {
				t.Error(err)
			}
			if fresh {
				owners.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := owners.Load(); n != 1 {
		t.Fatalf("%d owners", n)
	}
}

func TestSweepDeletesExpiredKeys(t *testing.T) {
	s, clk := openTemp(t, Options{})
	ctx := context.Background()
	// More keys than one sweep transaction visits.
	const n = 2*sweepChunk + 10
	for i := 0; i < n; i++ {
		ttl := time.Minute
		if i%2 == 0 {
			ttl = time.Hour
		}
		if _, _, err := s.Reserve(ctx, fmt.Sprintf("k%04d", i), "h", ttl); err != nil {
			t.Fatal(err)
		}
	}
	clk.advance(2 * time.Minute)
	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	var left int
	err := s.db.View(func(tx *bolt.Tx) error {
		left = tx.Bucket(bucketIdem).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if left != n/2 {
		t.Fatalf("%d keys left, want %d", left, n/2)
	}
	if _, fresh, _ := s.Reserve(ctx, "k0000", "h", time.Minute); fresh {
		t.Fatal("a live key was swept")
	}
}

func TestProcessOnce(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx := context.Background()
	o := s.ProcessOnce()
	if _, fresh, err := o.Reserve(ctx, "k", "h1", time.Minute); err != nil || !fresh {
		t.Fatalf("first reserve: %v %v", fresh, err)
	}
	if prior, fresh, _ := o.Reserve(ctx, "k", "h2", time.Minute); fresh || prior != nil {
		t.Fatal("a running key reserved twice")
	}
	_ = o.Release(ctx, "k", "h2")
	if _, fresh, _ := o.Reserve(ctx, "k", "h3", time.Minute); fresh {
		t.Fatal("another holder's release freed the claim")
	}
	if err := o.Complete(ctx, "k", []byte("done"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, fresh, _ := o.Reserve(ctx, "k", "h4", time.Minute); !fresh {
		t.Fatal("a finished key is still held")
	}
	_ = o.Release(ctx, "k", "h4")
	if _, fresh, _ := o.Reserve(ctx, "k", "h5", time.Minute); !fresh {
		t.Fatal("a released key is still held")
	}
}
