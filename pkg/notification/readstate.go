package notification

import (
	"encoding/json"
	"slices"
	"sort"
	"time"
)

// Read state lives in the user's history, as events: a KindMark event
// records that the user saw, read or dismissed some notifications, a
// KindUnread event carries the unread counts as of a position. Every node
// and every resuming client sees them in the history's one order, so the
// state folded from the history (Fold) is the same wherever it is
// computed, with no counter to keep in step across nodes, and it is
// retained, trimmed and lost exactly with the notifications it describes.

const (
	// KindMark records a change of read state; Payload is a Mark JSON.
	KindMark Kind = 4
	// KindUnread carries unread counts; Payload is an Unread JSON.
	KindUnread Kind = 5
)

// The states a surface can put notifications in.
const (
	StateSeen      = "seen"
	StateRead      = "read"
	StateDismissed = "dismissed"
	// StateDelivered is recorded by Herald itself: a push of the
	// notifications reached the push services of Mark.Devices.
	StateDelivered = "delivered"
)

// ValidState reports whether s is one of the states.
func ValidState(s string) bool {
	return s == StateSeen || s == StateRead || s == StateDismissed
}

// Mark is the payload of a KindMark event: State applied to the
// notifications IDs, or to every earlier notification with Tag, or to
// every earlier notification up to and including UpTo (a cursor). Exactly
// one selector is set. By names the surface: "session:<id>",
// "device:<id>", "api" or "provider:<name>". A delivered mark names the
// devices instead.
type Mark struct {
	State   string    `json:"state"`
	IDs     []string  `json:"ids,omitempty"`
	Tag     string    `json:"tag,omitempty"`
	UpTo    string    `json:"up_to,omitempty"`
	At      time.Time `json:"at"`
	By      string    `json:"by,omitempty"`
	Devices []string  `json:"devices,omitempty"`
}

// NewMarkEvent builds the event recording m for user.
func NewMarkEvent(user string, m *Mark) (*Event, error) {
	payload, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &Event{User: user, Kind: KindMark, Tag: m.Tag, Created: m.At, Payload: payload}, nil
}

// Unread is the payload of a KindUnread event and the answer of
// GET /v1/unread: the user's unread notifications, in all and by tag, as
// of the position AsOf.
type Unread struct {
	Total int            `json:"total"`
	Tags  map[string]int `json:"tags"`
	AsOf  string         `json:"as_of,omitempty"`
}

// NewUnreadEvent builds the event carrying u to user's sessions.
func NewUnreadEvent(user string, u *Unread, at time.Time) (*Event, error) {
	payload, err := json.Marshal(u)
	if err != nil {
		return nil, err
	}
	return &Event{User: user, Kind: KindUnread, Created: at, Payload: payload}, nil
}

// Marks are the times a notification entered each state (zero: not yet).
type Marks struct {
	Delivered, Seen, Read, Dismissed time.Time
}

// Unread reports whether the notification still counts as unread.
func (m Marks) Unread() bool { return m.Read.IsZero() && m.Dismissed.IsZero() }

// ReadState is the read state folded from a history.
type ReadState struct {
	order []string // notification ids, oldest first
	notes map[string]*noteState
	head  Cursor
	// early holds delivered marks that came before their notification: a
	// push may go out, and be recorded, before the notification it shows
	// reached the history.
	early map[string]*noteState
}

type noteState struct {
	tag       string
	seq       uint64
	retracted bool
	marks     Marks
	devices   []string // pushed to
}

// Fold computes the read state of the events (a user's history, oldest
// first). A mark applies to the notifications before it in the history:
// a read of a conversation does not cover a message that arrives after.
// Retracted notifications no longer count as unread.
func Fold(events []*Event) *ReadState {
	r := &ReadState{notes: make(map[string]*noteState)}
	for _, ev := range events {
		r.Apply(ev)
	}
	return r
}

// Apply folds one more event, newer than every event folded so far.
func (r *ReadState) Apply(ev *Event) {
	if !ev.Cursor.IsZero() {
		r.head = ev.Cursor
	}
	switch ev.Kind {
	case KindNotification:
		if _, dup := r.notes[ev.ID]; !dup {
			n := &noteState{tag: ev.Tag, seq: ev.Cursor.Seq}
			if e, ok := r.early[ev.ID]; ok {
				n.marks.Delivered, n.devices = e.marks.Delivered, e.devices
				delete(r.early, ev.ID)
			}
			r.order = append(r.order, ev.ID)
			r.notes[ev.ID] = n
		}
	case KindRetract:
		var rt Retraction
		if json.Unmarshal(ev.Payload, &rt) != nil {
			return
		}
		for _, id := range r.order {
			n := r.notes[id]
			if id == rt.ID || (rt.Tag != "" && n.tag == rt.Tag) {
				n.retracted = true
			}
		}
	case KindMark:
		var m Mark
		if json.Unmarshal(ev.Payload, &m) != nil {
			return
		}
		if m.State == StateDelivered {
			r.delivered(&m)
			return
		}
		for _, id := range r.Select(&m) {
			n := r.notes[id]
			set(&n.marks, m.State, m.At)
		}
	}
}

// delivered records the devices of a delivered mark, which names ids.
func (r *ReadState) delivered(m *Mark) {
	for _, id := range m.IDs {
		n, ok := r.notes[id]
		if !ok {
			if r.early == nil {
				r.early = make(map[string]*noteState)
			}
			if len(r.early) >= maxEarly {
				continue
			}
			if n, ok = r.early[id]; !ok {
				n = &noteState{}
				r.early[id] = n
			}
		}
		if n.marks.Delivered.IsZero() {
			n.marks.Delivered = m.At.UTC()
		}
		for _, d := range m.Devices {
			if !slices.Contains(n.devices, d) {
				n.devices = append(n.devices, d)
			}
		}
	}
}

// maxEarly bounds the delivered marks kept for notifications not (yet)
// folded: those of notifications trimmed from the history never match.
const maxEarly = 256

func set(ms *Marks, state string, at time.Time) {
	var t *time.Time
	switch state {
	case StateSeen:
		t = &ms.Seen
	case StateRead:
		t = &ms.Read
	case StateDismissed:
		t = &ms.Dismissed
	default:
		return
	}
	if t.IsZero() {
		*t = at.UTC()
	}
	// Reading or dismissing implies having seen.
	if state != StateSeen && ms.Seen.IsZero() {
		ms.Seen = at.UTC()
	}
}

// Select returns the ids of the notifications folded so far that m's
// selector names, oldest first. An up_to cursor of another history (epoch)
// selects nothing.
func (r *ReadState) Select(m *Mark) []string {
	var out []string
	switch {
	case len(m.IDs) > 0:
		want := make(map[string]bool, len(m.IDs))
		for _, id := range m.IDs {
			want[id] = true
		}
		for _, id := range r.order {
			if want[id] {
				out = append(out, id)
			}
		}
	case m.Tag != "":
		for _, id := range r.order {
			if r.notes[id].tag == m.Tag {
				out = append(out, id)
			}
		}
	case m.UpTo != "":
		c, err := ParseCursor(m.UpTo)
		if err != nil || (r.head.Epoch != "" && c.Epoch != r.head.Epoch) {
			return nil
		}
		for _, id := range r.order {
			if r.notes[id].seq <= c.Seq {
				out = append(out, id)
			}
		}
	}
	return out
}

// Changes returns the ids among those m selects whose state m would change.
func (r *ReadState) Changes(m *Mark) []string {
	var out []string
	for _, id := range r.Select(m) {
		ms := r.notes[id].marks
		var was time.Time
		switch m.State {
		case StateSeen:
			was = ms.Seen
		case StateRead:
			was = ms.Read
		case StateDismissed:
			was = ms.Dismissed
		}
		if was.IsZero() {
			out = append(out, id)
		}
	}
	return out
}

// Has reports whether notification id is in the folded history.
func (r *ReadState) Has(id string) bool { _, ok := r.notes[id]; return ok }

// Marks returns notification id's marks.
func (r *ReadState) Marks(id string) Marks {
	if n, ok := r.notes[id]; ok {
		return n.marks
	}
	return Marks{}
}

// ShownOn returns the devices any of the notifications ids was pushed
// to, in the order they were first pushed to.
func (r *ReadState) ShownOn(ids []string) []string {
	var out []string
	for _, id := range ids {
		if n, ok := r.notes[id]; ok {
			for _, d := range n.devices {
				if !slices.Contains(out, d) {
					out = append(out, d)
				}
			}
		}
	}
	return out
}

// Head is the cursor of the newest event folded.
func (r *ReadState) Head() Cursor { return r.head }

// Unread counts the notifications that are neither read, dismissed nor
// retracted, in all and by tag (notifications without a tag count in the
// total only).
func (r *ReadState) Unread() *Unread {
	u := &Unread{Tags: map[string]int{}, AsOf: r.head.String()}
	for _, id := range r.order {
		n := r.notes[id]
		if n.retracted || !n.marks.Unread() {
			continue
		}
		u.Total++
		if n.tag != "" {
			u.Tags[n.tag]++
		}
	}
	return u
}

// UnreadIDs returns the ids of the unread notifications, oldest first.
func (r *ReadState) UnreadIDs() []string {
	var out []string
	for _, id := range r.order {
		if n := r.notes[id]; !n.retracted && n.marks.Unread() {
			out = append(out, id)
		}
	}
	return out
}

// Tags returns the tags of the notifications ids, sorted, once each.
func (r *ReadState) Tags(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if n, ok := r.notes[id]; ok && n.tag != "" && !seen[n.tag] {
			seen[n.tag] = true
			out = append(out, n.tag)
		}
	}
	sort.Strings(out)
	return out
}
