// Package storetest holds the behaviour every store shares, as test
// functions run against each implementation.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/idempotency"
)

// Idempotency checks reserve / in progress / completed / released /
// expired, and that a release frees only its own holder's claim.
func Idempotency(t *testing.T, s idempotency.Store) {
	ctx := context.Background()
	prior, fresh, err := s.Reserve(ctx, "k1", "h1", time.Minute)
	if err != nil || !fresh || prior != nil {
		t.Fatalf("first reserve: %q %v %v", prior, fresh, err)
	}
	prior, fresh, err = s.Reserve(ctx, "k1", "h2", time.Minute)
	if err != nil || fresh || prior != nil {
		t.Fatalf("while in progress: %q %v %v", prior, fresh, err)
	}
	if err := s.Release(ctx, "k1", "h2"); err != nil {
		t.Fatal(err)
	}
	if _, fresh, _ := s.Reserve(ctx, "k1", "h3", time.Minute); fresh {
		t.Fatal("a release by another holder freed the claim")
	}
	if err := s.Complete(ctx, "k1", []byte(`{"ok":1}`), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, "k1", "h1"); err != nil {
		t.Fatal(err)
	}
	prior, fresh, err = s.Reserve(ctx, "k1", "h4", time.Minute)
	if err != nil || fresh || string(prior) != `{"ok":1}` {
		t.Fatalf("after complete (and a late release): %q %v %v", prior, fresh, err)
	}
	if _, fresh, _ := s.Reserve(ctx, "k2", "h1", time.Minute); !fresh {
		t.Fatal("k2 not fresh")
	}
	if err := s.Release(ctx, "k2", "h1"); err != nil {
		t.Fatal(err)
	}
	if _, fresh, _ := s.Reserve(ctx, "k2", "h2", time.Minute); !fresh {
		t.Fatal("released key not fresh again")
	}
	if err := s.Release(ctx, "k2", "h1"); err != nil {
		t.Fatal(err)
	}
	if _, fresh, _ := s.Reserve(ctx, "k2", "h3", time.Minute); fresh {
		t.Fatal("a late release by the first holder freed the second one's claim")
	}
	if err := s.Release(ctx, "never", "h1"); err != nil {
		t.Fatalf("release of a key never claimed: %v", err)
	}
	if _, fresh, _ := s.Reserve(ctx, "k3", "h1", 200*time.Millisecond); !fresh {
		t.Fatal("k3 not fresh")
	}
	time.Sleep(400 * time.Millisecond)
	if _, fresh, _ := s.Reserve(ctx, "k3", "h2", time.Minute); !fresh {
		t.Fatal("expired key not fresh again")
	}
}
