package hub

import (
	"context"
	"sync"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/transport"
)

// Session is one connected client (a browser tab) of one user.
type Session struct {
	hub       *Hub
	id        uint64
	user      string
	sid       string
	transport string
	expires   time.Time
	w         transport.Writer
	try       transport.TryWriter // w, when it can write without waiting

	mu        sync.Mutex
	queue     []*notification.Event
	queued    int // bytes of queue, as frameBytes counts them
	spare     []*notification.Event
	pending   []*notification.Event // live events held back during replay
	replaying bool
	writing   bool
	ping      bool // a keep-alive is due
	flush     bool // the transport holds the rest of a partial write
	closed    bool
	detached  bool
	idle      *sync.Cond // signalled when the writer stops
	last      notification.Cursor
}

// User returns the session's user id.
func (s *Session) User() string { return s.user }

// SessionID returns the token session claim the session was opened with.
func (s *Session) SessionID() string { return s.sid }

// deliver queues a live event, or holds it back while replay runs.
func (s *Session) deliver(ev *notification.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.replaying {
		if len(s.pending) >= s.hub.opts.SessionQueue*4 {
			s.closeLocked(transport.CloseSlowConsumer)
			return
		}
		s.pending = append(s.pending, ev)
		return
	}
	s.enqueueLocked(ev)
}

// enqueueReplayed queues an event read from history during replay.
func (s *Session) enqueueReplayed(ev *notification.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.enqueueLocked(ev)
	}
}

// enqueueLocked drops events the session already has (by cursor), tells the
// client when the history epoch changed under it, and starts a writer.
func (s *Session) enqueueLocked(ev *notification.Event) {
	if ev.Kind != notification.KindReset && !s.last.IsZero() {
		if ev.Cursor.Epoch == s.last.Epoch {
			if ev.Cursor.Seq <= s.last.Seq {
				return
			}
		} else {
			// The history was lost and started again: cursors the client
			// holds are void. Say so before the first event of the new one.
			s.pushLocked(notification.NewResetEvent(s.user, notification.Cursor{}))
		}
	}
	s.pushLocked(ev)
	if ev.Kind != notification.KindReset || !ev.Cursor.IsZero() {
		s.last = ev.Cursor
	}
}

func (s *Session) pushLocked(ev *notification.Event) {
	if s.closed {
		return
	}
	// Replayed history may exceed the live limit: a resuming client is
	// allowed its backlog, but a live client that stops reading is not.
	limit := s.hub.opts.SessionQueue
	if s.replaying {
		limit += s.hub.opts.ReplayPage
	}
	size := frameBytes(ev)
	if len(s.queue) >= limit || (!s.replaying && len(s.queue) > 0 && s.queued+size > s.hub.opts.SessionQueueBytes) {
		s.closeLocked(transport.CloseSlowConsumer)
		return
	}
	s.queue = append(s.queue, ev)
	s.queued += size
	s.startWriterLocked()
}

// frameBytes is what an event is counted as in a session's queue: its
// payload and room for the cursor and framing around it.
func frameBytes(ev *notification.Event) int { return len(ev.Payload) + 64 }

// startWriterLocked makes sure a writer will send what is queued: the
// hub's pool when the transport can write without waiting, else a
// goroutine of the session's own.
func (s *Session) startWriterLocked() {
	if s.writing {
		return
	}
	s.writing = true
	if s.try != nil && len(s.queue) > 0 {
		s.hub.writers.enqueue(s)
		return
	}
	go s.writeLoop()
}

// reset tells the client its cursor could not be resumed and continues from
// the current head of the history.
func (s *Session) reset(ctx context.Context) {
	var head notification.Cursor
	if _, h, err := s.hub.broker.History(ctx, s.user, notification.Cursor{}, 1); err == nil {
		head = h
	}
	s.mu.Lock()
	s.pushLocked(notification.NewResetEvent(s.user, head))
	s.last = head
	s.mu.Unlock()
	s.endReplay()
}

// endReplay releases the live events held back during replay.
func (s *Session) endReplay() {
	s.mu.Lock()
	defer s.mu.Unlock()
	pending := s.pending
	s.pending = nil
	for _, ev := range pending {
		if s.closed {
			break
		}
		s.enqueueLocked(ev)
	}
	s.replaying = false
}

// keepAlive schedules a ping unless a write is already proving liveness,
// and ends sessions whose token expired: the client reconnects with a
// fresh one.
func (s *Session) keepAlive(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.expires.IsZero() && now.After(s.expires) {
		s.closeLocked(transport.CloseTokenExpired)
		return
	}
	if s.closed || s.writing {
		return
	}
	s.ping = true
	s.startWriterLocked()
}

// writeLoop is the session's short-lived writer: it drains the queue in
// batches, waiting on the socket as needed, and exits when there is
// nothing left to send.
func (s *Session) writeLoop() {
	for {
		s.mu.Lock()
		if s.closed || (len(s.queue) == 0 && !s.ping && !s.flush) {
			s.stopWritingLocked()
			s.mu.Unlock()
			return
		}
		batch := s.takeQueueLocked()
		ping := s.ping && len(batch) == 0 && !s.flush
		s.ping = false
		s.flush = false
		s.mu.Unlock()

		deadline := time.Now().Add(s.hub.opts.WriteTimeout)
		var err error
		if ping {
			err = s.w.KeepAlive(deadline)
		} else {
			// An empty batch still sends what a partial write left.
			err = s.w.WriteEvents(deadline, batch)
		}
		if err == nil && !ping {
			s.wrote(batch)
		}
		s.mu.Lock()
		s.giveBackLocked(batch)
		s.mu.Unlock()
		if err != nil {
			s.hub.opts.Logger.Debug("session write failed", "user", s.user, "transport", s.transport, "err", err)
			s.close(transport.CloseWriteFailed)
		}
	}
}

// takeQueueLocked takes the queued events as a batch; the queue goes on in
// the spare slice, so that two slices serve a session's whole life.
func (s *Session) takeQueueLocked() []*notification.Event {
	batch := s.queue
	s.queued = 0
	s.queue = s.spare[:0]
	s.spare = nil
	return batch
}

// giveBackLocked keeps a written batch's slice, emptied, as the spare.
func (s *Session) giveBackLocked(batch []*notification.Event) {
	clear(batch)
	if s.spare == nil {
		s.spare = batch[:0]
	}
}

// wrote counts a written batch and the delivery latency of its
// notifications.
func (s *Session) wrote(batch []*notification.Event) {
	if len(batch) == 0 {
		return
	}
	m := s.hub.opts.Metrics
	now := time.Now()
	m.framesOf(s.transport).Add(float64(len(batch)))
	for _, ev := range batch {
		if ev.Kind == notification.KindNotification && !ev.Created.IsZero() {
			m.latency.Observe(now.Sub(ev.Created).Seconds())
		}
	}
}

// close ends the session from the hub's side.
func (s *Session) close(reason transport.CloseReason) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked(reason)
}

func (s *Session) closeLocked(reason transport.CloseReason) {
	if s.closed {
		return
	}
	s.closed = true
	s.queue, s.queued = nil, 0
	s.pending = nil
	if reason == transport.CloseSlowConsumer {
		s.hub.opts.Metrics.slowConsumers.Inc()
	}
	s.hub.opts.Metrics.sessionsClosed[reason].Inc()
	// Close may block on the network; never under the session lock.
	go s.w.Close(reason)
}

// markDetached reports whether this is the first Detach of the session.
func (s *Session) markDetached() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.detached {
		return false
	}
	s.detached = true
	if !s.closed {
		s.hub.opts.Metrics.sessionsClosed[transport.CloseClient].Inc()
	}
	s.closed = true
	s.queue, s.queued = nil, 0
	s.pending = nil
	return true
}

// waitWriter blocks until the session's writer goroutine has exited.
func (s *Session) waitWriter() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.writing {
		if s.idle == nil {
			s.idle = sync.NewCond(&s.mu)
		}
		s.idle.Wait()
	}
}
