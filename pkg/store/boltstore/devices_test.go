package boltstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/push"
)

// TestCancelPushOfUnknownKeysWritesNothing: acks of ids that have no
// pending push (a flood of made-up ids) must not cost a write transaction.
func TestCancelPushOfUnknownKeysWritesNothing(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx := context.Background()
	real := push.Pending{User: "bob", ID: "real", Due: time.Now().Add(time.Minute), Message: []byte(`{}`)}
	if err := s.SchedulePush(ctx, []push.Pending{real}); err != nil {
		t.Fatal(err)
	}
	fake := make([]string, 1000)
	for i := range fake {
		fake[i] = push.PendingKey("mallory", fmt.Sprint("fake-", i))
	}
	writes := dbWrites(s)
	if err := s.CancelPush(ctx, fake); err != nil {
		t.Fatal(err)
	}
	if w := dbWrites(s); w != writes {
		t.Fatalf("cancelling unknown keys wrote %d pages", w-writes)
	}
	if err := s.CancelPush(ctx, append(fake, real.Key())); err != nil {
		t.Fatal(err)
	}
	if dbWrites(s) == writes {
		t.Fatal("cancelling a pending push wrote nothing")
	}
	if got, _ := s.ClaimPush(ctx, time.Now().Add(time.Hour), 10, time.Minute); len(got) != 0 {
		t.Fatalf("the cancelled push is still pending: %+v", got)
	}
}

func dbWrites(s *Store) int64 {
	st := s.db.Stats()
	return st.TxStats.GetWrite()
}
