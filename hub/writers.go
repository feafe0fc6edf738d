package hub

import (
	"errors"
	"runtime"
	"sync"

	"github.com/heraldhq/herald/pkg/transport"
)

// maxTryBatch is the largest batch the pool writes; a longer one (a resume
// replaying its backlog) goes to the session's own goroutine, since its
// socket will likely fill anyway.
const maxTryBatch = 64

// writerPool is a few goroutines that write the queued frames of sessions
// with a transport.TryWriter. A session is in at most one queue at a time (its
// writing flag says so), and always in the same one, so its batches stay
// in order without a lock held across the write.
type writerPool struct {
	queues []writerQueue
	quit   chan struct{}
	wg     sync.WaitGroup
}

type writerQueue struct {
	mu    sync.Mutex
	ready []*Session
	spare []*Session
	wake  chan struct{} // one token: the queue went from empty to not
	_     [64]byte      // keep the queues' locks off each other's cache lines
}

func newWriterPool() *writerPool {
	p := &writerPool{quit: make(chan struct{})}
	p.queues = make([]writerQueue, runtime.GOMAXPROCS(0))
	for i := range p.queues {
		q := &p.queues[i]
		q.wake = make(chan struct{}, 1)
		p.wg.Add(1)
		go p.run(q)
	}
	return p
}

// enqueue hands a session with frames to write to its pool goroutine.
func (p *writerPool) enqueue(s *Session) {
	q := &p.queues[s.id%uint64(len(p.queues))]
	q.mu.Lock()
	q.ready = append(q.ready, s)
	first := len(q.ready) == 1
	q.mu.Unlock()
	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

func (p *writerPool) run(q *writerQueue) {
	defer p.wg.Done()
	for {
		q.mu.Lock()
		batch := q.ready
		q.ready = q.spare[:0]
		q.spare = nil
		q.mu.Unlock()
		if len(batch) == 0 {
			q.mu.Lock()
			q.spare = batch
			q.mu.Unlock()
			select {
			case <-q.wake:
				continue
			case <-p.quit:
				return
			}
		}
		for i, s := range batch {
			s.writeFromPool()
			batch[i] = nil
		}
		q.mu.Lock()
		if q.spare == nil {
			q.spare = batch[:0]
		}
		q.mu.Unlock()
	}
}

// stop ends the pool's goroutines once every session is done with them.
func (p *writerPool) stop() {
	close(p.quit)
	p.wg.Wait()
}

// writeFromPool writes one batch of the session's queue without waiting.
// What the socket would not take, and keep-alives, go on on a goroutine of
// the session's own; frames queued meanwhile put the session at the back
// of its pool queue, so one busy session does not hold up the others.
func (s *Session) writeFromPool() {
	s.mu.Lock()
	if s.closed || len(s.queue) == 0 || len(s.queue) > maxTryBatch || s.flush {
		s.handOffLocked()
		s.mu.Unlock()
		return
	}
	batch := s.takeQueueLocked()
	s.mu.Unlock()

	all, err := s.try.TryWriteEvents(batch)
	if errors.Is(err, transport.ErrWouldBlock) {
		// Nothing went out: the batch goes first on the session's own
		// goroutine, ahead of what was queued since.
		s.mu.Lock()
		defer s.mu.Unlock()
		s.queue = append(batch, s.queue...)
		for _, ev := range batch {
			s.queued += frameBytes(ev)
		}
		s.handOffLocked()
		return
	}
	if err == nil {
		s.wrote(batch)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.giveBackLocked(batch)
	switch {
	case err != nil:
		s.hub.opts.Logger.Debug("session write failed", "user", s.user, "transport", s.transport, "err", err)
		s.closeLocked(transport.CloseWriteFailed)
		s.stopWritingLocked()
	case !all:
		s.flush = true
		go s.writeLoop()
	case len(s.queue) > 0 && !s.closed:
		s.hub.writers.enqueue(s)
	default:
		s.handOffLocked()
	}
}

// handOffLocked ends the session's turn in the pool: its writer stops, or
// continues on a goroutine of its own when there is something the pool
// does not write.
func (s *Session) handOffLocked() {
	if s.closed || (len(s.queue) == 0 && !s.ping && !s.flush) {
		s.stopWritingLocked()
		return
	}
	go s.writeLoop()
}

func (s *Session) stopWritingLocked() {
	s.writing = false
	if s.idle != nil {
		s.idle.Broadcast()
	}
}
