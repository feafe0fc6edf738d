package boltstore

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/heraldhq/herald/pkg/notification"
)

var bucketMembers = []byte("members")

// Members returns the known members of conversation conv, in byte order.
func (s *Store) Members(ctx context.Context, conv string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("boltstore members: %w", err)
	}
	if err := checkKey(conv); err != nil {
		return nil, fmt.Errorf("boltstore members: %w", err)
	}
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMembers).Bucket([]byte(conv))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore members of %q: %w", conv, err)
	}
	return out, nil
}

// ApplyMembership records a membership change: Deleted drops the
// conversation, Set replaces its members, then Add and Remove apply.
func (s *Store) ApplyMembership(ctx context.Context, m *notification.Membership) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore membership: %w", err)
	}
	if err := checkKey(m.Conversation); err != nil {
		return fmt.Errorf("boltstore membership: %w", err)
	}
	conv := []byte(m.Conversation)
	// Chat platforms repeat the full member list with every message; a
	// change that changes nothing must not cost a commit.
	if m.Set != nil && !m.Deleted && len(m.Add) == 0 && len(m.Remove) == 0 {
		cur, err := s.Members(ctx, m.Conversation)
		if err == nil && sameMembers(cur, m.Set) {
			return nil
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketMembers)
		if m.Deleted || m.Set != nil {
			if err := root.DeleteBucket(conv); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return err
			}
			if m.Deleted {
				return nil
			}
		}
		b, err := root.CreateBucketIfNotExists(conv)
		if err != nil {
			return err
		}
		for _, list := range [][]string{m.Set, m.Add} {
			for _, u := range list {
				if u == "" || len(u) > 256 {
					continue
				}
				if err := b.Put([]byte(u), []byte{}); err != nil {
					return err
				}
			}
		}
		for _, u := range m.Remove {
			if u == "" {
				continue
			}
			if err := b.Delete([]byte(u)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltstore membership of %q: %w", m.Conversation, err)
	}
	return nil
}

// sameMembers reports whether sorted cur holds exactly the valid ids of set.
func sameMembers(cur, set []string) bool {
	want := make(map[string]bool, len(set))
	for _, u := range set {
		if u != "" && len(u) <= 256 {
			want[u] = true
		}
	}
	if len(want) != len(cur) {
		return false
	}
	for _, u := range cur {
		if !want[u] {
			return false
		}
	}
	return true
}
