package boltstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/pkg/push"
)

// Push devices and pending pushes:
//
//	devices       device id → Device JSON
//	user-devices  one sub-bucket per user: device id → nothing
//	push-pending  user \0 notification id → due (8 bytes, Unix ns) | Pending JSON
//	push-due      due (8 bytes) | key → nothing, the pending pushes in due order
var (
	bucketDevices     = []byte("devices")
	bucketUserDevices = []byte("user-devices")
	bucketPending     = []byte("push-pending")
	bucketDue         = []byte("push-due")
)

// RegisterDevice stores d under d.ID. A device registered by another user
// before moves to d.User (a browser's subscription belongs to whoever
// signed in last). created is false when the same user had it already.
// A device new to d.User is refused with push.ErrTooManyDevices when the
// user has limit devices already (limit <= 0: no limit); the count and
// the insert are one transaction, so the limit is exact.
func (s *Store) RegisterDevice(ctx context.Context, d *push.Device, limit int) (created bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("boltstore register device: %w", err)
	}
	if err := checkKey(d.ID); err != nil {
		return false, fmt.Errorf("boltstore register device: %w", err)
	}
	if err := checkKey(d.User); err != nil {
		return false, fmt.Errorf("boltstore register device: %w", err)
	}
	val, err := json.Marshal(d)
	if err != nil {
		return false, err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		devs, users := tx.Bucket(bucketDevices), tx.Bucket(bucketUserDevices)
		created = true
		if old := devs.Get([]byte(d.ID)); old != nil {
			var prev push.Device
			if json.Unmarshal(old, &prev) == nil {
				if prev.User == d.User {
					created = false
				} else if ub := users.Bucket([]byte(prev.User)); ub != nil {
					if err := ub.Delete([]byte(d.ID)); err != nil {
						return err
					}
				}
			}
		}
		ub, err := users.CreateBucketIfNotExists([]byte(d.User))
		if err != nil {
			return err
		}
		if created && limit > 0 && countKeys(ub, limit) >= limit {
			return push.ErrTooManyDevices // rolls back a move from another user too
		}
		if err := ub.Put([]byte(d.ID), []byte{}); err != nil {
			return err
		}
		return devs.Put([]byte(d.ID), val)
	})
	if err != nil {
		return false, fmt.Errorf("boltstore register device: %w", err)
	}
	return created, nil
}

// countKeys counts b's keys, stopping at limit.
func countKeys(b *bolt.Bucket, limit int) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil && n < limit; k, _ = c.Next() {
		n++
	}
	return n
}

// Devices returns user's devices.
func (s *Store) Devices(ctx context.Context, user string) ([]push.Device, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("boltstore devices: %w", err)
	}
	var out []push.Device
	err := s.db.View(func(tx *bolt.Tx) error {
		ub := tx.Bucket(bucketUserDevices).Bucket([]byte(user))
		if ub == nil {
			return nil
		}
		devs := tx.Bucket(bucketDevices)
		return ub.ForEach(func(id, _ []byte) error {
			var d push.Device
			if v := devs.Get(id); v != nil && json.Unmarshal(v, &d) == nil {
				out = append(out, d)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore devices of %q: %w", user, err)
	}
	return out, nil
}

// HasDevices reports which of users have at least one device.
func (s *Store) HasDevices(ctx context.Context, users []string) (map[string]bool, error) {
	out := make(map[string]bool)
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUserDevices)
		for _, u := range users {
			if ub := b.Bucket([]byte(u)); ub != nil {
				if k, _ := ub.Cursor().First(); k != nil {
					out[u] = true
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore has devices: %w", err)
	}
	return out, nil
}

// DeleteDevices removes user's devices that match: all of them with ids
// and session empty, those with the given ids, or those registered by
// session. It returns how many went.
func (s *Store) DeleteDevices(ctx context.Context, user string, ids []string, session string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("boltstore delete devices: %w", err)
	}
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = 0
		ub := tx.Bucket(bucketUserDevices).Bucket([]byte(user))
		if ub == nil {
			return nil
		}
		devs := tx.Bucket(bucketDevices)
		want := map[string]bool{}
		for _, id := range ids {
			want[id] = true
		}
		var gone [][]byte
		_ = ub.ForEach(func(id, _ []byte) error {
			var d push.Device
			_ = json.Unmarshal(devs.Get(id), &d)
			if (len(ids) > 0 && want[string(id)]) || (session != "" && d.Session == session) || (len(ids) == 0 && session == "") {
				gone = append(gone, append([]byte(nil), id...))
			}
			return nil
		})
		for _, id := range gone {
			if err := ub.Delete(id); err != nil {
				return err
			}
			if err := devs.Delete(id); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("boltstore delete devices: %w", err)
	}
	return n, nil
}

// pendingState is the in-memory half of the pending pushes: which are
// claimed now. After a restart nothing is, so claims of a dead process
// come due again.
type pendingState struct {
	mu      sync.Mutex
	claimed map[string]bool
}

// SchedulePush stores pending pushes, replacing any with the same key.
func (s *Store) SchedulePush(ctx context.Context, ps []push.Pending) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore schedule push: %w", err)
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		pend, due := tx.Bucket(bucketPending), tx.Bucket(bucketDue)
		for i := range ps {
			key := []byte(ps[i].Key())
			if old := pend.Get(key); len(old) >= 8 {
				if err := due.Delete(dueKey(old[:8], key)); err != nil {
					return err
				}
			}
			val, err := json.Marshal(&ps[i])
			if err != nil {
				return err
			}
			at := binary.BigEndian.AppendUint64(nil, uint64(ps[i].Due.UnixNano()))
			if err := pend.Put(key, append(at, val...)); err != nil {
				return err
			}
			if err := due.Put(dueKey(at, key), []byte{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltstore schedule push: %w", err)
	}
	return nil
}

func dueKey(at, key []byte) []byte {
	return append(append(make([]byte, 0, len(at)+len(key)), at...), key...)
}

// CancelPush drops pending pushes (their notifications were acked) and
// finished ones (DonePush is the same operation). The keys are looked up
// in a read-only transaction first: acks of notifications that have no
// pending push (the common case, and all of a flood of made-up ids) cost
// that lookup only, not a write transaction and its fsync.
func (s *Store) CancelPush(ctx context.Context, keys []string) error {
	// Claims end after the keys are gone, so no claim can take a key
	// between the two.
	defer s.ReleasePush(keys)
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		pend := tx.Bucket(bucketPending)
		for _, k := range keys {
			if pend.Get([]byte(k)) != nil {
				found = true
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltstore cancel push: %w", err)
	}
	if !found {
		return nil
	}
	err = s.db.Batch(func(tx *bolt.Tx) error {
		pend, due := tx.Bucket(bucketPending), tx.Bucket(bucketDue)
		for _, k := range keys {
			key := []byte(k)
			old := pend.Get(key)
			if len(old) < 8 {
				continue
			}
			if err := due.Delete(dueKey(old[:8], key)); err != nil {
				return err
			}
			if err := pend.Delete(key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltstore cancel push: %w", err)
	}
	return nil
}

// DonePush forgets pushes that were sent (or given up).
func (s *Store) DonePush(ctx context.Context, keys []string) error { return s.CancelPush(ctx, keys) }

// ClaimPush hands out up to max pushes due by now that no one holds; they
// stay claimed until DonePush or SchedulePush (a retry) or a restart.
func (s *Store) ClaimPush(ctx context.Context, now time.Time, max int, _ time.Duration) ([]push.Pending, error) {
	s.pending.mu.Lock()
	defer s.pending.mu.Unlock()
	if s.pending.claimed == nil {
		s.pending.claimed = map[string]bool{}
	}
	var out []push.Pending
	err := s.db.View(func(tx *bolt.Tx) error {
		pend := tx.Bucket(bucketPending)
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.First(); k != nil && len(out) < max; k, _ = c.Next() {
			if len(k) < 8 || int64(binary.BigEndian.Uint64(k)) > now.UnixNano() {
				break
			}
			key := string(k[8:])
			if s.pending.claimed[key] {
				continue
			}
			v := pend.Get(k[8:])
			var p push.Pending
			if len(v) < 8 || json.Unmarshal(v[8:], &p) != nil {
				continue
			}
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore claim push: %w", err)
	}
	for i := range out {
		s.pending.claimed[out[i].Key()] = true
	}
	return out, nil
}

// ReleasePush makes claimed pushes claimable again (a retry rescheduled
// them already, or the sender is shutting down).
func (s *Store) ReleasePush(keys []string) {
	s.pending.mu.Lock()
	for _, k := range keys {
		delete(s.pending.claimed, k)
	}
	s.pending.mu.Unlock()
}
