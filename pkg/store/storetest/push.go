package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/push"
)

// PushStore is the devices and pending-push part of a store.
type PushStore interface {
	RegisterDevice(ctx context.Context, d *push.Device, limit int) (bool, error)
	Devices(ctx context.Context, user string) ([]push.Device, error)
	HasDevices(ctx context.Context, users []string) (map[string]bool, error)
	DeleteDevices(ctx context.Context, user string, ids []string, session string) (int, error)
	SchedulePush(ctx context.Context, ps []push.Pending) error
	CancelPush(ctx context.Context, keys []string) error
	DonePush(ctx context.Context, keys []string) error
	ClaimPush(ctx context.Context, now time.Time, max int, lease time.Duration) ([]push.Pending, error)
}

func deviceIDs(t *testing.T, s PushStore, user string) []string {
	t.Helper()
	devs, err := s.Devices(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range devs {
		ids = append(ids, d.ID)
	}
	slices.Sort(ids)
	return ids
}

// Devices checks registration (idempotent, moving between users), listing,
// and deletion by id and by session.
func Devices(t *testing.T, s PushStore) {
	ctx := context.Background()
	reg := func(id, user, session string) bool {
		t.Helper()
		created, err := s.RegisterDevice(ctx, &push.Device{ID: id, User: user, Platform: push.PlatformFCM, Token: "t-" + id, Session: session}, 0)
		if err != nil {
			t.Fatal(err)
		}
		return created
	}
	if !reg("d1", "alice", "s1") || !reg("d2", "alice", "s2") || !reg("d3", "bob", "s3") {
		t.Fatal("first registrations must be created")
	}
	if reg("d1", "alice", "s1") {
		t.Fatal("registering the same device again must not create")
	}
	if got := deviceIDs(t, s, "alice"); !slices.Equal(got, []string{"d1", "d2"}) {
		t.Fatalf("alice's devices = %v", got)
	}
	// bob signs in on alice's browser: the device moves.
	if !reg("d2", "bob", "s4") {
		t.Fatal("a device moving to another user counts as created")
	}
	if got := deviceIDs(t, s, "alice"); !slices.Equal(got, []string{"d1"}) {
		t.Fatalf("alice's devices after the move = %v", got)
	}
	has, err := s.HasDevices(ctx, []string{"alice", "bob", "carol"})
	if err != nil || !has["alice"] || !has["bob"] || has["carol"] {
		t.Fatalf("HasDevices = %v, %v", has, err)
	}
	// Concurrent calls (which a store may answer together) each get the
	// answer for their own users.
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			users := [][]string{{"alice"}, {"carol"}, {"carol", "bob"}, {}}[i%4]
			has, err := s.HasDevices(ctx, users)
			want := map[string]bool{"alice": true, "bob": true}
			if err != nil || len(has) > len(users) {
				t.Errorf("HasDevices(%v) = %v, %v", users, has, err)
				return
			}
			for _, u := range users {
				if has[u] != want[u] {
					t.Errorf("HasDevices(%v) = %v", users, has)
				}
			}
		}()
	}
	wg.Wait()
	if n, err := s.DeleteDevices(ctx, "bob", nil, "s4"); err != nil || n != 1 {
		t.Fatalf("delete bob's session s4: %d, %v", n, err)
	}
	if got := deviceIDs(t, s, "bob"); !slices.Equal(got, []string{"d3"}) {
		t.Fatalf("bob's devices after logout = %v", got)
	}
	if n, err := s.DeleteDevices(ctx, "alice", []string{"d3"}, ""); err != nil || n != 0 {
		t.Fatalf("alice deleted bob's device: %d, %v", n, err)
	}
	if n, err := s.DeleteDevices(ctx, "alice", []string{"d1"}, ""); err != nil || n != 1 {
		t.Fatalf("delete d1: %d, %v", n, err)
	}
}

// PendingPushes checks scheduling, claiming only what is due, exclusive
// claims, cancellation and completion.
func PendingPushes(t *testing.T, s PushStore) {
	ctx := context.Background()
	now := time.Now()
	ps := []push.Pending{
		{User: "alice", ID: "n1", Due: now.Add(-time.Second), Message: []byte(`{"id":"n1"}`)},
		{User: "alice", ID: "n2", Due: now.Add(-time.Second), Message: []byte(`{"id":"n2"}`)},
		{User: "bob", ID: "n3", Due: now.Add(time.Hour), Message: []byte(`{"id":"n3"}`)},
	}
	if err := s.SchedulePush(ctx, ps); err != nil {
		t.Fatal(err)
	}
	if err := s.CancelPush(ctx, []string{push.PendingKey("alice", "n2")}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimPush(ctx, now, 10, time.Minute)
	if err != nil || len(got) != 1 || got[0].ID != "n1" || string(got[0].Message) != `{"id":"n1"}` {
		t.Fatalf("claim = %+v, %v; want n1 only", got, err)
	}
	if again, _ := s.ClaimPush(ctx, now, 10, time.Minute); len(again) != 0 {
		t.Fatalf("claimed twice: %+v", again)
	}
	if err := s.DonePush(ctx, []string{got[0].Key()}); err != nil {
		t.Fatal(err)
	}
	later, err := s.ClaimPush(ctx, now.Add(2*time.Hour), 10, time.Minute)
	if err != nil || len(later) != 1 || later[0].ID != "n3" {
		t.Fatalf("claim later = %+v, %v; want n3", later, err)
	}

	// Many users' pushes (spread over a store's partitions, if it has
	// any): claims of at most 7 hand each out once, and cancelling by
	// key finds each.
	var many []push.Pending
	for i := range 40 {
		many = append(many, push.Pending{User: fmt.Sprint("user-", i), ID: "m", Due: now.Add(-time.Second), Message: []byte("{}")})
	}
	if err := s.SchedulePush(ctx, many); err != nil {
		t.Fatal(err)
	}
	var cancel []string
	for i := 0; i < 40; i += 4 {
		cancel = append(cancel, push.PendingKey(fmt.Sprint("user-", i), "m"))
	}
	if err := s.CancelPush(ctx, cancel); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 20 {
		got, err := s.ClaimPush(ctx, now, 7, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > 7 {
			t.Fatalf("claim of at most 7 handed out %d", len(got))
		}
		for _, p := range got {
			if seen[p.User] {
				t.Fatalf("%s's push handed out twice", p.User)
			}
			seen[p.User] = true
		}
	}
	if len(seen) != 30 {
		t.Fatalf("%d pushes claimed, want the 30 not cancelled", len(seen))
	}
	for i := 0; i < 40; i += 4 {
		if seen[fmt.Sprint("user-", i)] {
			t.Fatalf("cancelled push of user-%d was claimed", i)
		}
	}
}

// DeviceLimit checks the per-user device limit: new devices beyond it
// are refused with push.ErrTooManyDevices, re-registering one the user
// has still works, a device cannot move into a full user, and concurrent
// registrations never take a user past the limit.
func DeviceLimit(t *testing.T, s PushStore) {
	ctx := context.Background()
	reg := func(id, user string) (bool, error) {
		return s.RegisterDevice(ctx, &push.Device{ID: id, User: user, Platform: push.PlatformFCM, Token: "t-" + id}, 3)
	}
	for _, id := range []string{"c1", "c2", "c3"} {
		if created, err := reg(id, "carol"); err != nil || !created {
			t.Fatalf("register %s: %v %v", id, created, err)
		}
	}
	if _, err := reg("c4", "carol"); !errors.Is(err, push.ErrTooManyDevices) {
		t.Fatalf("a fourth device with limit 3: %v, want ErrTooManyDevices", err)
	}
	if created, err := reg("c2", "carol"); err != nil || created {
		t.Fatalf("re-registering a device carol has: %v %v, want accepted, not created", created, err)
	}
	if _, err := reg("d1", "dave"); err != nil {
		t.Fatal(err)
	}
	if _, err := reg("d1", "carol"); !errors.Is(err, push.ErrTooManyDevices) {
		t.Fatalf("a device moving into a full user: %v, want ErrTooManyDevices", err)
	}
	if got := deviceIDs(t, s, "dave"); !slices.Equal(got, []string{"d1"}) {
		t.Fatalf("dave's devices after a refused move = %v, want d1 kept", got)
	}
	if got := deviceIDs(t, s, "carol"); !slices.Equal(got, []string{"c1", "c2", "c3"}) {
		t.Fatalf("carol's devices = %v", got)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.RegisterDevice(ctx, &push.Device{ID: fmt.Sprint("e", i), User: "erin", Platform: push.PlatformFCM, Token: "t"}, 5)
			switch {
			case err == nil:
				mu.Lock()
				ok++
				mu.Unlock()
			case !errors.Is(err, push.ErrTooManyDevices):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := len(deviceIDs(t, s, "erin")); ok != 5 || n != 5 {
		t.Fatalf("24 concurrent registrations with limit 5: %d accepted, %d stored; want exactly 5", ok, n)
	}
}
