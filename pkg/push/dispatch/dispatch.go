// Package dispatch sends the pushes that came due: it claims pending
// pushes from the store, sends each to every device of its user through
// the sender of the device's platform, removes devices the push service
// says are gone, and forgets the push once done. Any node may send any
// pending push; the store's claim makes sure only one does.
package dispatch

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/heraldhq/herald/pkg/push"
)

// Store is where pending pushes and devices live.
type Store interface {
	ClaimPush(ctx context.Context, now time.Time, max int, lease time.Duration) ([]push.Pending, error)
	DonePush(ctx context.Context, keys []string) error
	ReleasePush(keys []string)
	Devices(ctx context.Context, user string) ([]push.Device, error)
	DeleteDevices(ctx context.Context, user string, ids []string, session string) (int, error)
}

// Channels says whether a user has a delivery channel (a platform) on.
type Channels interface {
	ChannelOn(ctx context.Context, user, channel string) (bool, error)
}

// Options configure a Dispatcher.
type Options struct {
	// Senders by platform; a device of a platform without one is skipped
	// (counted as "unconfigured").
	Senders map[string]push.Sender
	// Extra devices every user has, e.g. the operator's outgoing webhook.
	Extra []push.Device
	// Poll is how often due pushes are looked for (default 250ms); Kick
	// looks at once.
	Poll time.Duration
	// Lease is how long a claim holds before another node may take the
	// push over (default 2m: longer than a send with its retries).
	Lease time.Duration
	// Batch is how many pushes one claim takes (default 64), Workers how
	// many are sent at once (default 16).
	Batch, Workers int
	// Badge returns the user's unread total as of m (a push may go out
	// before its notification is in the history), put into each push that
	// does not carry one yet; nil or an error sends none.
	Badge func(ctx context.Context, m *push.Message) (int, error)
	// Delivered is told which registered devices a notification (not a
	// retraction or a clearing push) was handed to, so that the clearing
	// push of its read reaches them and only them.
	Delivered func(ctx context.Context, user, id string, devices []string)
	// OnSend observes each send: platform and outcome ("ok", "gone",
	// "retry", "failed", "skipped", "unconfigured", "off").
	OnSend func(platform, outcome string, d time.Duration)
	Logger *slog.Logger
	Now    func() time.Time
}

// Dispatcher sends due pushes until its Run ends.
type Dispatcher struct {
	store    Store
	channels Channels
	opts     Options
	kick     chan struct{}
}

// New returns a Dispatcher; channels may be nil (every channel on).
func New(store Store, channels Channels, opts Options) *Dispatcher {
	if opts.Poll <= 0 {
		opts.Poll = 250 * time.Millisecond
	}
	if opts.Lease <= 0 {
		opts.Lease = 2 * time.Minute
	}
	if opts.Batch <= 0 {
		opts.Batch = 64
	}
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Dispatcher{store: store, channels: channels, opts: opts, kick: make(chan struct{}, 1)}
}

// Kick makes Run look for due pushes now.
func (d *Dispatcher) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run claims and sends due pushes until ctx ends; pushes in hand are
// finished first.
func (d *Dispatcher) Run(ctx context.Context) {
	t := time.NewTicker(d.opts.Poll)
	defer t.Stop()
	sem := make(chan struct{}, d.opts.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.kick:
		}
		for ctx.Err() == nil {
			due, err := d.store.ClaimPush(ctx, d.opts.Now(), d.opts.Batch, d.opts.Lease)
			if err != nil {
				if ctx.Err() == nil {
					d.opts.Logger.Warn("push claim failed", "err", err)
				}
				break
			}
			for i := range due {
				p := due[i]
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					d.store.ReleasePush([]string{p.Key()})
					continue
				}
				wg.Add(1)
				go func() {
					defer func() { <-sem; wg.Done() }()
					d.send(context.WithoutCancel(ctx), &p)
				}()
			}
			if len(due) < d.opts.Batch {
				break
			}
		}
	}
}

// send pushes p to every device of its user, then forgets it.
func (d *Dispatcher) send(ctx context.Context, p *push.Pending) {
	var m push.Message
	if err := json.Unmarshal(p.Message, &m); err != nil {
		d.opts.Logger.Error("pending push undecodable; dropped", "user", p.User, "id", p.ID, "err", err)
		_ = d.store.DonePush(ctx, []string{p.Key()})
		return
	}
	devices, err := d.store.Devices(ctx, p.User)
	if err != nil {
		// Leave the claim: its lease ends and the push is tried again.
		d.opts.Logger.Warn("push devices unavailable", "user", p.User, "err", err)
		return
	}
	devices = append(devices, d.extra(p.User)...)
	if len(m.Devices) > 0 {
		devices = only(devices, m.Devices)
	}
	if m.Badge == nil && d.opts.Badge != nil && len(devices) > 0 {
		if n, err := d.opts.Badge(ctx, &m); err == nil {
			m.Badge = &n
		} else {
			d.opts.Logger.Debug("push badge unavailable", "user", p.User, "err", err)
		}
	}
	sent := make([]bool, len(devices))
	var wg sync.WaitGroup
	for i := range devices {
		dev := &devices[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent[i] = d.sendOne(ctx, dev, &m)
		}()
	}
	wg.Wait()
	if d.opts.Delivered != nil && !m.Silent() {
		var to []string
		for i := range devices {
			if sent[i] && devices[i].ID != "" {
				to = append(to, devices[i].ID)
			}
		}
		if len(to) > 0 {
			d.opts.Delivered(ctx, p.User, p.ID, to)
		}
	}
	if err := d.store.DonePush(ctx, []string{p.Key()}); err != nil {
		d.opts.Logger.Warn("push done not recorded", "user", p.User, "id", p.ID, "err", err)
	}
}

// only keeps the devices whose ids are listed, and the extra devices
// (which every push reaches).
func only(devices []push.Device, ids []string) []push.Device {
	out := devices[:0]
	for _, dev := range devices {
		if dev.ID == "" || slices.Contains(ids, dev.ID) {
			out = append(out, dev)
		}
	}
	return out
}

func (d *Dispatcher) extra(user string) []push.Device {
	out := make([]push.Device, len(d.opts.Extra))
	for i, dev := range d.opts.Extra {
		dev.User = user
		out[i] = dev
	}
	return out
}

// sendOne sends m to dev and reports whether the push service took it.
func (d *Dispatcher) sendOne(ctx context.Context, dev *push.Device, m *push.Message) bool {
	start := d.opts.Now()
	observe := func(outcome string) {
		if d.opts.OnSend != nil {
			d.opts.OnSend(dev.Platform, outcome, d.opts.Now().Sub(start))
		}
	}
	if d.channels != nil {
		on, err := d.channels.ChannelOn(ctx, dev.User, dev.Platform)
		if err == nil && !on {
			observe("off")
			return false
		}
	}
	sender := d.opts.Senders[dev.Platform]
	if sender == nil {
		observe("unconfigured")
		return false
	}
	err := sender.Send(ctx, dev, m)
	outcome, ok := push.OutcomeOf(err)
	if ok {
		observe("ok")
		return true
	}
	observe(outcome.String())
	if outcome == push.Skipped {
		return false
	}
	if outcome == push.Gone && dev.ID != "" {
		if _, derr := d.store.DeleteDevices(ctx, dev.User, []string{dev.ID}, ""); derr != nil {
			d.opts.Logger.Warn("gone device not removed", "device", dev.ID, "err", derr)
		} else {
			d.opts.Logger.Info("push device gone; removed", "platform", dev.Platform, "device", dev.ID, "user", dev.User)
		}
		return false
	}
	d.opts.Logger.Warn("push failed", "platform", dev.Platform, "device", dev.ID, "outcome", outcome.String(), "err", err)
	return false
}
