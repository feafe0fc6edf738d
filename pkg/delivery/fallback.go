package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/pkg/lograte"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/push"
)

// PushScheduler keeps the pending push decisions: in the store, so that
// they outlive the node that made them.
type PushScheduler interface {
	HasDevices(ctx context.Context, users []string) (map[string]bool, error)
	SchedulePush(ctx context.Context, ps []push.Pending) error
	CancelPush(ctx context.Context, keys []string) error
}

// Presence counts a user's live sessions, across the cluster when there is
// one (hub.Hub's Presence).
type Presence interface {
	Presence(ctx context.Context, user string) (int, error)
}

// FallbackOptions configure a Fallback.
type FallbackOptions struct {
	// AckTimeout is how long a notification that reached live sessions
	// waits for an ack before it is pushed.
	AckTimeout time.Duration
	// EveryUser pushes for users without registered devices too (an
	// operator webhook receives every push).
	EveryUser bool
	// Due is called when a push was scheduled to go at once.
	Due func()
	// MaxPendingAcks caps the acked ids of one user waiting to be applied
	// (DefaultMaxPendingAcks); more are dropped and counted.
	MaxPendingAcks int
	// WarnEvery is the least time between two warnings of one kind (10s);
	// each says how many it held back.
	WarnEvery time.Duration
	Logger    *slog.Logger
	// AcksDropped counts the acks dropped over MaxPendingAcks (nil: an
	// unregistered counter); see NewAcksDropped.
	AcksDropped prometheus.Counter
}

// NewAcksDropped is herald_acks_dropped_total, registered with reg when
// it is not nil.
func NewAcksDropped(reg prometheus.Registerer) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_acks_dropped_total", Help: "Acks not applied because their user had too many waiting (the push may go).",
	})
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// DefaultMaxPendingAcks leaves room for two full acks of maxAckIDs (a
// client acking what a replay showed) while the store catches up.
const DefaultMaxPendingAcks = 2048

// Fallback decides, for each notification, whether and when it is pushed
// to the user's devices (SPEC §5.3): at once when the user has no live
// session anywhere, else after the ack timeout unless a session acks it
// first. The decision is a pending push in the store; an ack cancels it.
type Fallback struct {
	presence Presence
	store    PushScheduler
	opts     FallbackOptions

	// pending holds, per user, the acked ids whose pending pushes are
	// still to be cancelled; cancelLoop swaps it out when woken. One lock
	// for all users: it is held for a few map inserts, never for I/O.
	mu       sync.Mutex
	closed   bool
	pending  map[string]map[string]struct{}
	wake     chan struct{} // capacity 1: acks are waiting
	stop     chan struct{}
	done     chan struct{}
	warnings *lograte.Limiter
}

// NewFallback returns the fallback over store, asking presence whether a
// user is online; Close stops it.
func NewFallback(presence Presence, store PushScheduler, opts FallbackOptions) *Fallback {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxPendingAcks <= 0 {
		opts.MaxPendingAcks = DefaultMaxPendingAcks
	}
	if opts.WarnEvery <= 0 {
		opts.WarnEvery = 10 * time.Second
	}
	if opts.AcksDropped == nil {
		opts.AcksDropped = NewAcksDropped(nil)
	}
	f := &Fallback{
		presence: presence, store: store, opts: opts,
		pending:  make(map[string]map[string]struct{}),
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		warnings: lograte.New(opts.WarnEvery),
	}
	go f.cancelLoop()
	return f
}

// Schedule records the push decision of each event, before the events are
// published (an ack can then never arrive before its pending push exists).
// Quiet notifications (quiet hours) are never pushed; retractions are
// pushed at once so service workers close what they showed.
func (f *Fallback) Schedule(ctx context.Context, events []*notification.Event) error {
	users := make([]string, 0, len(events))
	for _, ev := range events {
		if ev.Kind == notification.KindNotification || ev.Kind == notification.KindRetract {
			users = append(users, ev.User)
		}
	}
	if len(users) == 0 {
		return nil
	}
	has := map[string]bool{}
	if !f.opts.EveryUser {
		var err error
		if has, err = f.store.HasDevices(ctx, users); err != nil {
			return fmt.Errorf("fallback devices: %w", err)
		}
	}
	now := time.Now()
	var ps []push.Pending
	soon := false
	for _, ev := range events {
		if !f.opts.EveryUser && !has[ev.User] {
			continue
		}
		m, ok := pushMessage(ev)
		if !ok {
			continue
		}
		due := now
		if ev.Kind == notification.KindNotification {
			n, err := f.presence.Presence(ctx, ev.User)
			if err != nil {
				return fmt.Errorf("fallback presence: %w", err)
			}
			if n > 0 {
				due = now.Add(f.opts.AckTimeout)
			}
		}
		soon = soon || !due.After(now)
		body, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("fallback encode: %w", err)
		}
		ps = append(ps, push.Pending{User: ev.User, ID: ev.ID, Due: due, Message: body})
	}
	if len(ps) == 0 {
		return nil
	}
	if err := f.store.SchedulePush(ctx, ps); err != nil {
		return fmt.Errorf("fallback schedule: %w", err)
	}
	if soon && f.opts.Due != nil {
		f.opts.Due()
	}
	return nil
}

// Unschedule drops the pending pushes of events whose publication failed.
func (f *Fallback) Unschedule(ctx context.Context, events []*notification.Event) {
	keys := make([]string, 0, len(events))
	for _, ev := range events {
		keys = append(keys, push.PendingKey(ev.User, ev.ID))
	}
	_ = f.store.CancelPush(ctx, keys)
}

// CancelTagged cancels the pending pushes of the notifications among
// events that carry tag, so that none can show on a device after the
// push that closes the tag.
func (f *Fallback) CancelTagged(ctx context.Context, events []*notification.Event, tag string) error {
	var keys []string
	for _, ev := range events {
		if ev.Kind == notification.KindNotification && ev.Tag == tag {
			keys = append(keys, push.PendingKey(ev.User, ev.ID))
		}
	}
	if len(keys) == 0 {
		return nil
	}
	return f.store.CancelPush(ctx, keys)
}

// pushMessage is what a device is sent for ev; ok is false for events
// that are never pushed.
func pushMessage(ev *notification.Event) (*push.Message, bool) {
	if ev.Kind == notification.KindRetract {
		return &push.Message{ID: ev.ID, User: ev.User, Tag: ev.Tag, Retract: true, Created: ev.Created}, true
	}
	var n notification.Notification
	if err := json.Unmarshal(ev.Payload, &n); err != nil {
		return nil, false
	}
	var data map[string]any
	if len(n.Data) > 0 {
		_ = json.Unmarshal(n.Data, &data)
	}
	if quiet, _ := data["quiet"].(bool); quiet {
		return nil, false
	}
	return &push.Message{
		ID: n.ID, User: n.User, Type: n.Type, Title: n.Title, Body: n.Body, Icon: n.Icon, URL: n.URL,
		Tag: n.Tag, Urgency: n.Urgency, TTL: time.Duration(n.TTL) * time.Second, Data: data, Created: n.CreatedAt,
	}, true
}

// Acked cancels the pending pushes of acked notifications. It never
// blocks the session that acked: the ids join the user's set of
// cancellations in hand, which the cancel loop takes and applies in
// chunks. Each user's set is capped (MaxPendingAcks): a user who acks
// faster than the store keeps up loses only their own extra acks (counted
// in herald_acks_dropped_total; the push then goes, which is harmless: the
// device drops an id it has shown), never another user's.
func (f *Fallback) Acked(user string, ids []string) {
	if len(ids) == 0 {
		return
	}
	dropped := 0
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	set := f.pending[user]
	if set == nil {
		set = make(map[string]struct{}, min(len(ids), f.opts.MaxPendingAcks))
		f.pending[user] = set
	}
	for _, id := range ids {
		if len(set) >= f.opts.MaxPendingAcks {
			if _, ok := set[id]; !ok {
				dropped++
			}
			continue
		}
		set[id] = struct{}{}
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	if dropped > 0 {
		f.opts.AcksDropped.Add(float64(dropped))
		f.warnings.Log(f.opts.Logger, slog.LevelWarn, "acks dropped", "ack cancellations over the per-user cap dropped; pushes may go for acked notifications",
			"user", user, "dropped", dropped)
	}
}

// cancelChunk is how many pending-push keys one store call cancels.
const cancelChunk = 256

// cancelLoop takes the users' sets of acked ids whenever there are some
// and cancels their pending pushes, until Close.
func (f *Fallback) cancelLoop() {
	defer close(f.done)
	batch := make([]string, 0, cancelChunk)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := f.store.CancelPush(ctx, batch); err != nil {
			f.warnings.Log(f.opts.Logger, slog.LevelWarn, "cancel failed", "cancel pending pushes failed", "n", len(batch), "err", err)
		}
		cancel()
		clear(batch)
		batch = batch[:0]
	}
	for {
		stopping := false
		select {
		case <-f.wake:
		case <-f.stop:
			stopping = true
		}
		f.mu.Lock()
		taken := f.pending
		f.pending = make(map[string]map[string]struct{}, len(taken))
		f.mu.Unlock()
		for user, ids := range taken {
			for id := range ids {
				batch = append(batch, push.PendingKey(user, id))
				if len(batch) == cancelChunk {
					flush()
				}
			}
		}
		flush()
		if stopping {
			return
		}
	}
}

// Close stops taking acks and waits for the cancellations in hand.
func (f *Fallback) Close() {
	f.mu.Lock()
	if !f.closed {
		f.closed = true
		close(f.stop)
	}
	f.mu.Unlock()
	<-f.done
}
