package boltstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/pkg/broker/brokertest"
	"github.com/heraldhq/herald/pkg/notification"
)

// writeLegacy stores a history the way earlier versions did.
func writeLegacy(t *testing.T, s *Store, user string, head uint64, seqs ...uint64) {
	t.Helper()
	err := s.db.Update(func(tx *bolt.Tx) error {
		ub, err := tx.Bucket(bucketHistory).CreateBucketIfNotExists([]byte(user))
		if err != nil {
			return err
		}
		for _, seq := range seqs {
			ev := brokertest.EventAt(user, fmt.Sprint(seq), time.Now())
			if err := ub.Put(seqKey(seq), ev.MarshalEnvelope()); err != nil {
				return err
			}
		}
		return ub.SetSequence(head)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLegacyHistoriesAreReadAndDropped(t *testing.T) {
	s, _ := openTemp(t, Options{})
	ctx := context.Background()
	if has, err := s.HasHistory(); err != nil || has {
		t.Fatalf("new file has history: %v %v", has, err)
	}
	writeLegacy(t, s, "a", 5, 4, 5)
	writeLegacy(t, s, "b", 2) // every event trimmed, the head kept
	if has, err := s.HasHistory(); err != nil || !has {
		t.Fatalf("has history: %v %v", has, err)
	}
	got := map[string]string{}
	err := s.EachHistory(ctx, func(user string, head uint64, events []*notification.Event) error {
		var seqs []uint64
		for _, ev := range events {
			if ev.User != user || ev.Cursor.Epoch != s.Epoch() || ev.ID != fmt.Sprintf("%s-%d", user, ev.Cursor.Seq) {
				t.Errorf("event %+v", ev)
			}
			seqs = append(seqs, ev.Cursor.Seq)
		}
		got[user] = fmt.Sprint(head, seqs)
		return nil
	})
	if err != nil || got["a"] != "5 [4 5]" || got["b"] != "2 []" || len(got) != 2 {
		t.Fatalf("histories %v, %v", got, err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.EachHistory(canceled, func(string, uint64, []*notification.Event) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("each history with a canceled context: %v", err)
	}
	if err := s.DropHistory(); err != nil {
		t.Fatal(err)
	}
	if has, err := s.HasHistory(); err != nil || has {
		t.Fatalf("after drop: %v %v", has, err)
	}
}
