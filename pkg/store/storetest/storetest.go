// Package storetest holds the behaviour every store shares, as test
// functions run against each implementation.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/idempotency"
)

// Idempotency checks reserve / in progress / completed / released / expired.
func Idempotency(t *testing.T, s idempotency.Store) {
	ctx := context.Background()
	prior, fresh, err := s.Reserve(ctx, "k1", time.Minute)
	if err != nil || !fresh || prior != nil {
		t.Fatalf("first reserve: %q %v %v", prior, fresh, err)
	}
	prior, fresh, err = s.Reserve(ctx, "k1", time.Minute)
	if err != nil || fresh || prior != nil {
		t.Fatalf("while in progress: %q %v %v", prior, fresh, err)
	}
	if err := s.Complete(ctx, "k1", []byte(`{"ok":1}`), time.Minute); err != nil {
		t.Fatal(err)
	}
	prior, fresh, err = s.Reserve(ctx, "k1", time.Minute)
	if err != nil || fresh || string(prior) != `{"ok":1}` {
		t.Fatalf("after complete: %q %v %v", prior, fresh, err)
	}
	if _, fresh, _ := s.Reserve(ctx, "k2", time.Minute); !fresh {
		t.Fatal("k2 not fresh")
	}
	if err := s.Release(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if _, fresh, _ := s.Reserve(ctx, "k2", time.Minute); !fresh {
		t.Fatal("released key not fresh again")
	}
	if _, fresh, _ := s.Reserve(ctx, "k3", 200*time.Millisecond); !fresh {
		t.Fatal("k3 not fresh")
	}
	time.Sleep(400 * time.Millisecond)
	if _, fresh, _ := s.Reserve(ctx, "k3", time.Minute); !fresh {
		t.Fatal("expired key not fresh again")
	}
}
