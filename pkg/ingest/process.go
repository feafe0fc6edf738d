// Package ingest turns verified webhook events into notifications: it
// finds the recipients, applies the operator's toggles and each user's
// preferences, renders templates, collapses bursts, and hands one
// notification per recipient to the delivery pipeline. It knows nothing of
// HTTP; the queue in front of it and the pipeline behind it are
// interfaces.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald/pkg/delivery"
	"github.com/heraldhq/herald/pkg/idempotency"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/webhook"
)

// Members knows the members of conversations, for events that do not name
// their recipients.
type Members interface {
	Members(ctx context.Context, conversation string) ([]string, error)
	ApplyMembership(ctx context.Context, m *notification.Membership) error
}

// PreferenceStore reads users' preferences; a user without any gets the
// zero Preferences.
type PreferenceStore interface {
	Preferences(ctx context.Context, user string) (*Preferences, error)
}

// Counter counts hits of a key within a window that starts at its first hit.
type Counter interface {
	Incr(ctx context.Context, key string, window time.Duration) (int64, error)
}

// Deliverer sends notifications: delivery.Pipeline, which claims the
// event's idempotency key, builds its notifications and publishes them.
type Deliverer interface {
	Deliver(ctx context.Context, build delivery.Build, opts delivery.PublishOptions) (delivery.Result, error)
}

// Reader marks a user's notifications of a conversation (a tag) read on
// a provider's word, clearing them on every surface; nothing to mark is
// no error.
type Reader interface {
	ReadTag(ctx context.Context, user, tag, by string) error
}

// ErrInProgress means another worker is processing the same event now;
// try again later.
var ErrInProgress = errors.New("ingest: event is being processed elsewhere")

// Options configure a Processor.
type Options struct {
	// Disabled is the master switch: no event notifies anyone.
	Disabled bool
	// Events switches event types off: provider → type → false. Absent
	// types are on.
	Events map[string]map[string]bool
	// Templates renders titles, bodies and urls; nil uses the defaults.
	Templates *Templates
	// ThrottleWindow collapses a burst of messages in one conversation to
	// one user into one popup (same tag, "N new messages from …"); zero
	// turns it off.
	ThrottleWindow time.Duration
	// DoneTTL is how long a processed event is remembered, InUse how long
	// a crashed worker's claim on one blocks others.
	DoneTTL, InUse time.Duration
	// Reads applies read events (webhook.KindRead); nil ignores them.
	Reads Reader
	// Now is the clock (tests).
	Now func() time.Time
}

// Processor processes events. It is safe for concurrent use.
type Processor struct {
	members Members
	prefs   PreferenceStore
	counter Counter
	pub     Deliverer
	once    idempotency.Store // a redelivered event is not published twice
	opts    Options
}

// New returns a Processor over its stores, delivering through pub with
// the events' idempotency keys kept in once.
func New(members Members, prefs PreferenceStore, counter Counter, pub Deliverer, once idempotency.Store, opts Options) *Processor {
	if opts.Templates == nil {
		opts.Templates, _ = NewTemplates(nil)
	}
	if opts.DoneTTL <= 0 {
		opts.DoneTTL = 24 * time.Hour
	}
	if opts.InUse <= 0 {
		opts.InUse = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Processor{members: members, prefs: prefs, counter: counter, pub: pub, once: once, opts: opts}
}

// Outcome says what processing an event did.
type Outcome struct {
	Notified int    // notifications (or retractions) published
	Read     int    // readers whose notifications a read event marked
	Skipped  string // why nothing was published: disabled, toggled_off, no_recipients, done
	// Input the event carried that was left out rather than delivered:
	// recipient ids that fail notification.ValidUserID (the others are
	// still notified), and url or icon fields, as the event gave them or
	// as a template rendered them, that fail notification.ValidURL (the
	// notification goes without them). Field → notifications affected.
	BadRecipients int            `json:"-"`
	Dropped       map[string]int `json:"-"`
	// Unrecorded is why the event, published, could not be recorded as
	// done: a redelivery of it would publish again (under the same
	// notification ids, which clients drop).
	Unrecorded error `json:"-"`
}

// drop counts field as left out of one notification.
func (o *Outcome) drop(field string) {
	if o.Dropped == nil {
		o.Dropped = map[string]int{}
	}
	o.Dropped[field]++
}

// Enabled reports whether the operator has event type typ of provider on.
func (p *Processor) Enabled(provider, typ string) bool {
	if p.opts.Disabled {
		return false
	}
	on, set := p.opts.Events[provider][typ]
	return !set || on
}

// Process turns ev into notifications and publishes them. It is safe to
// call again with the same event: the second call publishes nothing.
func (p *Processor) Process(ctx context.Context, ev *webhook.Event) (Outcome, error) {
	if ev.Kind == webhook.KindIgnore {
		return Outcome{Skipped: "ignored"}, nil
	}
	if ev.Members != nil {
		if err := p.members.ApplyMembership(ctx, ev.Members); err != nil {
			return Outcome{}, fmt.Errorf("ingest membership: %w", err)
		}
	}
	if ev.Kind == webhook.KindMembership {
		return Outcome{Skipped: "membership"}, nil
	}
	if p.opts.Disabled {
		return Outcome{Skipped: "disabled"}, nil
	}
	if !p.Enabled(ev.Provider, ev.Type) {
		return Outcome{Skipped: "toggled_off"}, nil
	}
	if ev.Kind == webhook.KindRead {
		return p.read(ctx, ev)
	}

	// The event's notifications are made once its key is claimed: the
	// burst count they take is then counted once.
	var out Outcome
	res, err := p.pub.Deliver(ctx, func(ctx context.Context) ([]*notification.Event, error) {
		var events []*notification.Event
		var err error
		out, events, err = p.process(ctx, ev)
		return events, err
	}, delivery.PublishOptions{
		IdempotencyKey: "ingest:" + ev.Provider + ":" + ev.ID, Keys: p.once,
		InUse: p.opts.InUse, ResultTTL: p.opts.DoneTTL,
		Result: func(events []*notification.Event) ([]byte, error) {
			out.Notified = len(events)
			return json.Marshal(Outcome{Notified: out.Notified})
		},
	})
	switch {
	case errors.Is(err, delivery.ErrInProgress):
		return Outcome{}, ErrInProgress
	case err != nil:
		return Outcome{}, err
	case res.Suppressed:
		var done Outcome
		_ = json.Unmarshal(res.Record, &done)
		done.Skipped = "done"
		return done, nil
	}
	// Published already when unrecorded: not an error to retry, but worth
	// knowing.
	out.Unrecorded = res.Unrecorded
	return out, nil
}

// read marks each reader's notifications of ev's conversation read. A
// mark is idempotent, so a redelivered event needs no key of its own.
func (p *Processor) read(ctx context.Context, ev *webhook.Event) (Outcome, error) {
	if p.opts.Reads == nil {
		return Outcome{Skipped: "ignored"}, nil
	}
	tag := ev.Tag
	if tag == "" {
		tag = ev.Conversation
	}
	var out Outcome
	for _, user := range ev.Recipients {
		if notification.ValidUserID(user) != nil {
			out.BadRecipients++
			continue
		}
		if err := p.opts.Reads.ReadTag(ctx, user, tag, "provider:"+ev.Provider); err != nil {
			return Outcome{}, fmt.Errorf("ingest read of %q: %w", user, err)
		}
		out.Read++
	}
	if out.Read == 0 {
		out.Skipped = "no_recipients"
	}
	return out, nil
}

// process makes ev's notifications.
func (p *Processor) process(ctx context.Context, ev *webhook.Event) (Outcome, []*notification.Event, error) {
	recipients, bad, err := p.recipients(ctx, ev)
	if err != nil {
		return Outcome{}, nil, err
	}
	out := Outcome{BadRecipients: bad}
	if len(recipients) == 0 {
		out.Skipped = "no_recipients"
		return out, nil, nil
	}
	// Notifications are dated when Herald makes them: retention and the
	// clients' ordering go by that; the provider's time is in data.sentAt.
	now := p.opts.Now().UTC()
	created := now
	tag := ev.Tag
	if tag == "" {
		tag = ev.Conversation
	}
	events := make([]*notification.Event, 0, len(recipients))
	for _, user := range recipients {
		prefs, err := p.prefs.Preferences(ctx, user)
		if err != nil {
			return Outcome{}, nil, fmt.Errorf("ingest preferences of %q: %w", user, err)
		}
		if ev.Conversation != "" && prefs.IsMuted(ev.Conversation) {
			continue
		}
		var ne *notification.Event
		if ev.Kind == webhook.KindRetract {
			id := ev.RetractID
			if id == "" {
				id = NotificationID(ev.Provider, messageKey(ev), user)
			}
			ne, err = notification.NewRetractEvent(user, id, tag, created)
		} else {
			ne, err = p.notification(ctx, ev, user, prefs, tag, created, now, &out)
		}
		if err != nil {
			return Outcome{}, nil, err
		}
		if ne != nil {
			events = append(events, ne)
		}
	}
	if len(events) == 0 {
		out.Skipped = "no_recipients"
	}
	return out, events, nil
}

// notification builds user's notification of a message, update or
// ready-made notification event; url and icon fields that are not web or
// relative URLs are left out and counted in out.
func (p *Processor) notification(ctx context.Context, ev *webhook.Event, user string, prefs *Preferences, tag string, created, now time.Time, out *Outcome) (*notification.Event, error) {
	count := 1
	if ev.Kind == webhook.KindMessage && p.opts.ThrottleWindow > 0 && ev.Conversation != "" && p.counter != nil {
		n, err := p.counter.Incr(ctx, "throttle:"+user+"\x00"+ev.Conversation, p.opts.ThrottleWindow)
		if err != nil {
			return nil, fmt.Errorf("ingest throttle: %w", err)
		}
		count = int(n)
	}
	evURL, icon := ev.URL, ev.Icon
	if notification.ValidURL(evURL) != nil {
		evURL = ""
		out.drop("url")
	}
	if notification.ValidURL(icon) != nil {
		icon = ""
		out.drop("icon")
	}
	d := &TemplateData{
		Provider: ev.Provider, Type: ev.Type, Conversation: ev.Conversation,
		ConversationName: ev.ConversationName, Message: ev.Message, Sender: ev.Sender,
		SenderName: ev.SenderName, Text: ev.Text, Title: ev.Title, Body: ev.Body, URL: evURL,
		Recipient: user, Count: count,
	}
	r, err := p.opts.Templates.Render(ev, d, prefs.Locale)
	if err != nil {
		return nil, err
	}
	if r.Title == "" && r.Body == "" {
		r.Title = "New notification"
	}
	url := r.URL
	if notification.ValidURL(url) != nil {
		// A template that renders a bad url gives no url, not the event's.
		url = ""
		out.drop("template_url")
	} else if url == "" {
		url = evURL
	}
	urgency := ev.Urgency
	if urgency == "" {
		urgency = notification.UrgencyNormal
	}
	data := map[string]any{"provider": ev.Provider}
	for k, v := range ev.Data {
		data[k] = v
	}
	setIf := func(k, v string) {
		if v != "" {
			data[k] = v
		}
	}
	setIf("conversationId", ev.Conversation)
	setIf("messageId", ev.Message)
	setIf("senderId", ev.Sender)
	if !ev.Created.IsZero() {
		data["sentAt"] = ev.Created.UTC().Format(time.RFC3339Nano)
	}
	if count > 1 {
		data["collapsed"] = count
	}
	if prefs.Quiet(now) || !prefs.ChannelOn("live") {
		// Quiet hours: kept in the inbox and shown in the page, no popup,
		// no push.
		data["quiet"] = true
		urgency = notification.UrgencyLow
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("ingest data: %w", err)
	}
	id := NotificationID(ev.Provider, messageKey(ev), user)
	switch ev.Kind {
	case webhook.KindUpdate:
		id = NotificationID(ev.Provider, messageKey(ev)+"\x00update\x00"+ev.ID, user)
	case webhook.KindNotification:
		id = NotificationID(ev.Provider, "event\x00"+ev.ID, user)
	}
	typ := ev.Type
	n := notification.Notification{
		ID: id, User: user, Type: typ, Title: r.Title, Body: r.Body, Icon: icon, URL: url,
		Tag: tag, Urgency: urgency, TTL: ev.TTL, Data: raw, CreatedAt: created,
	}
	return notification.NewEvent(&n)
}

// recipients are the event's named recipients, or the conversation's
// members, without the sender, the excluded and duplicates; ids that fail
// notification.ValidUserID (the API's check) are left out and counted in
// bad.
func (p *Processor) recipients(ctx context.Context, ev *webhook.Event) (_ []string, bad int, _ error) {
	list := ev.Recipients
	if list == nil && ev.Conversation != "" {
		if ev.Members != nil && ev.Members.Set != nil {
			list = ev.Members.Set
		} else {
			m, err := p.members.Members(ctx, ev.Conversation)
			if err != nil {
				return nil, 0, fmt.Errorf("ingest members of %q: %w", ev.Conversation, err)
			}
			list = m
		}
	}
	skip := ev.Exclude
	if ev.Sender != "" {
		skip = append(skip[:len(skip):len(skip)], ev.Sender)
	}
	out := notification.DistinctUsers(list, skip)
	valid := out[:0]
	for _, u := range out {
		if notification.ValidUserID(u) != nil {
			bad++
			continue
		}
		valid = append(valid, u)
	}
	return valid, bad, nil
}

// messageKey names the message an event is about: its id, else the event.
func messageKey(ev *webhook.Event) string {
	if ev.Message != "" {
		return "message\x00" + ev.Message
	}
	return "event\x00" + ev.ID
}

// NotificationID is the id of the notification about key for user: the
// same inputs give the same id, so a redelivered event produces the same
// notification (which clients drop) and a deletion can name what it
// retracts.
func NotificationID(provider, key, user string) string {
	return notification.DerivedID("wh", provider, key, user)
}
