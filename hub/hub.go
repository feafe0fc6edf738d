// Package hub owns the live side of Herald on one node: the sessions of
// connected clients, per-user fan-out of broker events to them, history
// replay when a client resumes from a cursor, acks, presence, and the
// keep-alive schedule. Transports (WebSocket, SSE) live in the server and
// plug in through the Writer interface; back-ends plug in through
// broker.Broker and Presence.
package hub

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/transport"
)

// Presence counts a user's sessions across the cluster. The embedded mode
// has no Presence: the hub's own counts are the whole truth.
type Presence interface {
	Join(ctx context.Context, user string) error
	Leave(ctx context.Context, user string) error
	Count(ctx context.Context, user string) (int, error)
}

// AckHandler is told of the notifications clients acked (the delivery
// pipeline cancels their pending pushes). It must not block.
type AckHandler interface {
	Acked(user string, ids []string)
}

// ErrClosing is returned by Attach once Shutdown has begun.
var ErrClosing = errors.New("hub: shutting down")

// Options tune a Hub. Zero values take the defaults.
type Options struct {
	SessionQueue int // frames a session may have unwritten before it is cut off (256)
	// SessionQueueBytes bounds the same queue in bytes (1 MiB): a client
	// that stops reading while large notifications arrive is cut off
	// before it holds SessionQueue of them. A session always takes one
	// notification, whatever its size.
	SessionQueueBytes int
	WriteTimeout      time.Duration // deadline for one batched write (10s)
	KeepAlive         time.Duration // interval of WS pings and SSE heartbeats (25s)
	ReplayPage        int           // history page size during replay (500)
	// MaxSessionsPerUser caps one user's sessions on this node (0: no
	// cap). A session beyond it closes the user's oldest one here with
	// transport.CloseTooManySessions: the newest tab is the one being looked at,
	// and a forgotten or runaway client cannot lock its user out. The cap
	// is per node: in a cluster a user holds at most nodes × cap sessions
	// (closing a session on another node would need a message to it).
	MaxSessionsPerUser int
	Logger             *slog.Logger
	Metrics            *Metrics
}

func (o Options) withDefaults() Options {
	if o.SessionQueue <= 0 {
		o.SessionQueue = 256
	}
	if o.SessionQueueBytes <= 0 {
		o.SessionQueueBytes = 1 << 20
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 25 * time.Second
	}
	if o.ReplayPage <= 0 {
		o.ReplayPage = 500
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	return o
}

const shardCount = 64

// Hub fans events out to this node's sessions. Users are spread over
// shards so that fan-out for different users never contends on one lock.
type Hub struct {
	opts     Options
	broker   broker.Broker
	presence Presence
	acks     AckHandler // set by RegisterAckHandler
	seed     maphash.Seed
	shards   [shardCount]shard
	writers  *writerPool

	closing  atomic.Bool
	sessions sync.WaitGroup // one per attached session, done when detached and its writer finished
	nextID   atomic.Uint64

	stop chan struct{}
	done chan struct{}
}

type shard struct {
	mu    sync.RWMutex
	users map[string]*userState
}

// userState is one user's presence on this node. sessions is replaced, never
// mutated, so Dispatch can range over it after releasing the shard lock.
type userState struct {
	sessions []*Session
	reserved int           // Reserve calls not yet released
	ready    chan struct{} // closed once the broker subscription is active (or failed)
	err      error         // set before ready is closed when Subscribe failed
}

// New returns a hub delivering the events of b: it registers itself as
// b's handler (Dispatch). presence may be nil (single node).
func New(b broker.Broker, presence Presence, opts Options) *Hub {
	h := &Hub{
		opts:     opts.withDefaults(),
		broker:   b,
		presence: presence,
		seed:     maphash.MakeSeed(),
		writers:  newWriterPool(),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for i := range h.shards {
		h.shards[i].users = make(map[string]*userState)
	}
	b.RegisterHandler(h.Dispatch)
	go h.keepAliveLoop()
	return h
}

func (h *Hub) shard(user string) *shard {
	return &h.shards[maphash.String(h.seed, user)%shardCount]
}

// Dispatch hands an event from the broker to the user's sessions on this
// node. It never blocks on a client: each session has a bounded queue.
func (h *Hub) Dispatch(ev *notification.Event) {
	sh := h.shard(ev.User)
	sh.mu.RLock()
	us := sh.users[ev.User]
	var sessions []*Session
	if us != nil {
		sessions = us.sessions
	}
	sh.mu.RUnlock()
	for _, s := range sessions {
		s.deliver(ev)
	}
}

// AttachRequest describes a new client session.
type AttachRequest struct {
	User      string
	SessionID string              // the token's session claim, for logout and devices
	Transport string              // "ws" or "sse", for metrics
	Since     notification.Cursor // resume after this cursor
	Resume    bool                // Since was given by the client
	Expires   time.Time           // the token's expiry; the session ends then (zero: never)
	Writer    transport.Writer
}

// Attach registers a session, makes sure this node receives the user's
// events, and, when the client resumes, replays what it missed before
// releasing live traffic, so the client sees every event once, in order.
// The caller must call Detach when the transport ends.
func (h *Hub) Attach(ctx context.Context, req AttachRequest) (*Session, error) {
	if h.closing.Load() {
		return nil, ErrClosing
	}
	s := &Session{
		hub:       h,
		id:        h.nextID.Add(1),
		user:      req.User,
		sid:       req.SessionID,
		transport: req.Transport,
		expires:   req.Expires,
		w:         req.Writer,
		replaying: req.Resume,
		last:      req.Since,
	}
	s.try, _ = req.Writer.(transport.TryWriter)
	h.sessions.Add(1)
	if err := h.join(ctx, s); err != nil {
		h.sessions.Done()
		return nil, err
	}
	if h.presence != nil {
		if err := h.presence.Join(ctx, s.user); err != nil {
			// The session may already have a writer running for events
			// dispatched since join; stop it before giving up.
			s.markDetached()
			h.leave(s)
			s.waitWriter()
			h.sessions.Done()
			return nil, fmt.Errorf("hub presence join: %w", err)
		}
	}
	h.opts.Metrics.connections.WithLabelValues(s.transport).Inc()
	if req.Resume {
		h.replay(ctx, s, req.Since)
	} else {
		h.opts.Metrics.resumes.WithLabelValues("none").Inc()
	}
	return s, nil
}

// join adds s to its user's sessions and waits until the broker delivers the
// user's events to this node. When that takes the user over
// MaxSessionsPerUser, the oldest session leaves the list at once (it gets
// no more events) and is closed; its transport detaches it as usual.
func (h *Hub) join(ctx context.Context, s *Session) error {
	var evicted *Session
	_, err := h.acquire(ctx, s.user, func(us *userState) {
		us.sessions = appendSession(us.sessions, s)
		if limit := h.opts.MaxSessionsPerUser; limit > 0 && len(us.sessions) > limit {
			evicted = us.sessions[0]
			// A fresh slice: Dispatch may be ranging over the old one, and
			// the evicted session must not stay reachable from it.
			us.sessions = append([]*Session(nil), us.sessions[1:]...)
		}
	})
	if evicted != nil {
		h.opts.Metrics.evicted.Inc()
		evicted.close(transport.CloseTooManySessions)
	}
	if err != nil && !errors.Is(err, errSubscribe) {
		h.leave(s)
	}
	return err
}

var errSubscribe = errors.New("hub subscribe")

// acquire finds or creates the user's state, applies add under the shard
// lock, and waits until the node's subscription for the user is active.
func (h *Hub) acquire(ctx context.Context, user string, add func(*userState)) (*userState, error) {
	sh := h.shard(user)
	sh.mu.Lock()
	us := sh.users[user]
	creator := us == nil
	if creator {
		us = &userState{ready: make(chan struct{})}
		sh.users[user] = us
	}
	add(us)
	sh.mu.Unlock()

	if creator {
		if err := h.broker.Subscribe(ctx, user); err != nil {
			us.err = fmt.Errorf("%w: %w", errSubscribe, err)
			sh.mu.Lock()
			if sh.users[user] == us {
				delete(sh.users, user)
			}
			sh.mu.Unlock()
			close(us.ready)
			return nil, us.err
		}
		close(us.ready)
		return us, nil
	}
	select {
	case <-us.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if us.err != nil {
		return nil, us.err
	}
	return us, nil
}

func appendSession(list []*Session, s *Session) []*Session {
	out := make([]*Session, len(list), len(list)+1)
	copy(out, list)
	return append(out, s)
}

// Reserve makes this node receive the user's events before a transport
// tells its client that it is connected, so that everything published
// after the client saw "open" reaches it. release undoes the reservation;
// call it once Attach has returned.
func (h *Hub) Reserve(ctx context.Context, user string) (release func(), err error) {
	if h.closing.Load() {
		return nil, ErrClosing
	}
	if _, err := h.acquire(ctx, user, func(us *userState) { us.reserved++ }); err != nil {
		if !errors.Is(err, errSubscribe) {
			h.drop(user, func(us *userState) bool { us.reserved--; return true })
		}
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() { h.drop(user, func(us *userState) bool { us.reserved--; return true }) })
	}, nil
}

// leave removes s from its user; the last one out unsubscribes the node.
func (h *Hub) leave(s *Session) {
	h.drop(s.user, func(us *userState) bool {
		out := make([]*Session, 0, len(us.sessions))
		for _, o := range us.sessions {
			if o != s {
				out = append(out, o)
			}
		}
		found := len(out) != len(us.sessions)
		us.sessions = out
		return found
	})
}

// drop applies remove to the user's state under the shard lock; when that
// leaves neither sessions nor reservations, the node unsubscribes.
func (h *Hub) drop(user string, remove func(*userState) bool) {
	sh := h.shard(user)
	sh.mu.Lock()
	us := sh.users[user]
	if us == nil {
		sh.mu.Unlock()
		return
	}
	last := remove(us) && len(us.sessions) == 0 && us.reserved == 0
	if last {
		delete(sh.users, user)
	}
	sh.mu.Unlock()
	if !last {
		return
	}
	// Wait for an in-flight Subscribe so the counts stay balanced.
	<-us.ready
	if us.err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := h.broker.Unsubscribe(ctx, user); err != nil {
			h.opts.Logger.Warn("unsubscribe failed", "user", user, "err", err)
		}
		cancel()
	}
}

// replay sends the events after since, then releases live events held back
// meanwhile. The subscription is already active, so anything published
// after the history read is in the held-back queue; duplicates are dropped
// by cursor.
func (h *Hub) replay(ctx context.Context, s *Session, since notification.Cursor) {
	cur := since
	for {
		events, _, err := h.broker.History(ctx, s.user, cur, h.opts.ReplayPage)
		if errors.Is(err, broker.ErrReset) {
			h.opts.Metrics.resumes.WithLabelValues("reset").Inc()
			s.reset(ctx)
			return
		}
		if err != nil {
			h.opts.Logger.Warn("history replay failed", "user", s.user, "err", err)
			h.opts.Metrics.resumes.WithLabelValues("failed").Inc()
			s.reset(ctx)
			return
		}
		for _, ev := range events {
			s.enqueueReplayed(ev)
		}
		if len(events) < h.opts.ReplayPage {
			break
		}
		cur = events[len(events)-1].Cursor
	}
	h.opts.Metrics.resumes.WithLabelValues("recovered").Inc()
	s.endReplay()
}

// Detach ends a session: the transport calls it when the connection ends.
func (h *Hub) Detach(s *Session) {
	if !s.markDetached() {
		return
	}
	h.leave(s)
	if h.presence != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := h.presence.Leave(ctx, s.user); err != nil {
			h.opts.Logger.Warn("presence leave failed", "user", s.user, "err", err)
		}
		cancel()
	}
	h.opts.Metrics.connections.WithLabelValues(s.transport).Dec()
	s.waitWriter()
	h.sessions.Done()
}

// RegisterAckHandler makes a the handler of every ack. Call it once,
// before sessions attach: the delivery pipeline that takes the acks is
// built after the hub, whose presence it reads.
func (h *Hub) RegisterAckHandler(a AckHandler) { h.acks = a }

// Ack records that a client displayed notifications.
func (h *Hub) Ack(user string, ids []string) {
	h.opts.Metrics.acks.Add(float64(len(ids)))
	if h.acks != nil && len(ids) > 0 {
		h.acks.Acked(user, ids)
	}
}

// MalformedAck counts a client frame that could not be understood.
func (h *Hub) MalformedAck() { h.opts.Metrics.malformedFrames.Inc() }

// Presence reports how many sessions the user has, across the cluster when
// a Presence back-end is configured, else on this node.
func (h *Hub) Presence(ctx context.Context, user string) (int, error) {
	if h.presence != nil {
		n, err := h.presence.Count(ctx, user)
		if err != nil {
			return 0, fmt.Errorf("hub presence: %w", err)
		}
		return n, nil
	}
	return h.LocalSessions(user), nil
}

// LocalSessions counts the user's sessions on this node.
func (h *Hub) LocalSessions(user string) int {
	sh := h.shard(user)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if us := sh.users[user]; us != nil {
		return len(us.sessions)
	}
	return 0
}

// Shutdown refuses new sessions, closes every session with transport.CloseShutdown
// (WebSocket 1012: reconnect elsewhere) and waits for them to drain.
func (h *Hub) Shutdown(ctx context.Context) error {
	if h.closing.Swap(true) {
		return nil
	}
	close(h.stop)
	<-h.done
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		var all []*Session
		for _, us := range sh.users {
			all = append(all, us.sessions...)
		}
		sh.mu.RUnlock()
		for _, s := range all {
			s.close(transport.CloseShutdown)
		}
	}
	drained := make(chan struct{})
	go func() { h.sessions.Wait(); close(drained) }()
	select {
	case <-drained:
		h.writers.stop()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("hub shutdown: %w", ctx.Err())
	}
}
