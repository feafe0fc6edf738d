// Package broker defines the seam between the hub and its back-ends: a
// Broker appends events to per-user histories and fans them out to every
// node holding a session of the user. Implementations live in subpackages
// (localbroker: in-process over the embedded store; redisbroker: Redis
// streams and pub/sub) and pass the shared suite in brokertest.
package broker

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
)

// ErrReset is returned by History when the cursor cannot be resumed from:
// its epoch is not the history's current one, it points past the head, or
// the events after it are no longer retained. The client must be told.
var ErrReset = errors.New("history cannot resume from cursor")

// ErrUnavailable is returned by Publish when the back-end could not make
// the events durable (too few replicas acknowledged them, no primary for
// their keys): the sender should retry. Events it reports may still have
// been appended and delivered; a retry with the same notification id does
// not append them twice.
var ErrUnavailable = errors.New("broker unavailable")

// ErrClosed is returned by a broker after Close.
var ErrClosed = errors.New("broker closed")

// Handler receives the events of users this node subscribed to. For each
// user, events arrive in cursor order without gaps or duplicates (the
// broker fills gaps from history); a new epoch restarts the order. When a
// gap cannot be filled (the events were trimmed first), the broker says so
// with a KindReset event for the user. Handler must not block: it is called
// on the broker's delivery path.
type Handler func(ev *notification.Event)

// HandlerSlot holds a broker's Handler. The broker exists before its
// handler (the hub reads the broker), so the handler registers itself
// once it exists, before its first Subscribe; events that arrive before
// then have no subscriber to go to and are dropped.
type HandlerSlot struct{ p atomic.Pointer[Handler] }

// Register sets the handler.
func (s *HandlerSlot) Register(h Handler) {
	if h != nil {
		s.p.Store(&h)
	}
}

// Deliver hands ev to the registered handler, if any.
func (s *HandlerSlot) Deliver(ev *notification.Event) {
	if h := s.p.Load(); h != nil {
		(*h)(ev)
	}
}

// Broker is the history-and-fan-out back-end.
type Broker interface {
	// Publish appends each event to its user's history, assigning its
	// Cursor, and then delivers it to every node subscribed to the user.
	// On success every event's Cursor is set. The append and the publish
	// happen together: an event in history is always delivered to the nodes
	// subscribed at the time, and a delivered event is always in history.
	Publish(ctx context.Context, events []*notification.Event) error

	// Subscribe makes this node receive the user's events through the
	// Handler. It returns once the subscription is active, so a history read
	// started afterwards overlaps with live delivery and nothing falls
	// between them. Subscribe and Unsubscribe calls for one user are
	// counted: the node stays subscribed until every Subscribe is matched.
	Subscribe(ctx context.Context, user string) error
	Unsubscribe(ctx context.Context, user string) error

	// History returns up to limit events of the user after cursor since,
	// oldest first, and the head: the cursor of the user's newest event
	// (zero when the history is empty). With a zero since it returns the
	// newest limit events. It returns ErrReset when since cannot be resumed
	// from.
	History(ctx context.Context, user string, since notification.Cursor, limit int) (events []*notification.Event, head notification.Cursor, err error)

	// RegisterHandler sets the Handler that receives the subscribed
	// users' events; it is called before the first Subscribe.
	RegisterHandler(h Handler)
	// Ready reports whether the back-end is reachable.
	Ready(ctx context.Context) error

	// Close stops delivery and releases resources.
	Close() error
}

// Retention bounds each user's history.
type Retention struct {
	MaxCount int           // events kept per user; 0 means 1000
	MaxAge   time.Duration // events older than this are dropped; 0 means 7 days
}

// Defaults for Retention.
const (
	DefaultMaxCount = 1000
	DefaultMaxAge   = 7 * 24 * time.Hour
)

// WithDefaults fills unset fields.
func (r Retention) WithDefaults() Retention {
	if r.MaxCount <= 0 {
		r.MaxCount = DefaultMaxCount
	}
	if r.MaxAge <= 0 {
		r.MaxAge = DefaultMaxAge
	}
	return r
}
