package redisbroker

import (
	"context"
	"hash/maphash"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/notification"
)

// Delivery runs on a fixed set of workers, each owning the users that hash
// to it: a user's events are handled by one goroutine, in the order the
// receive loop saw them, and a backfill (a Redis round trip) holds up only
// the users of one worker.
const (
	workerCount = 16
	workerQueue = 512
	retryDelay  = time.Second // before reading a failed backfill again
)

type jobKind uint8

const (
	jobActivate jobKind = iota // Redis confirmed a new subscription
	jobResync                  // go-redis re-subscribed after a lost connection
	jobMessage                 // a published event
)

type job struct {
	kind    jobKind
	sub     *userSub
	payload string // jobMessage: "<epoch> <seq> <envelope>"
}

type worker struct {
	b     *Broker
	jobs  chan job
	retry map[*userSub]struct{} // subscriptions whose backfill failed
}

func (b *Broker) startWorkers() {
	b.seed = maphash.MakeSeed()
	b.workers = make([]*worker, workerCount)
	for i := range b.workers {
		w := &worker{b: b, jobs: make(chan job, workerQueue), retry: make(map[*userSub]struct{})}
		b.workers[i] = w
		b.wg.Add(1)
		go w.run()
	}
}

func (b *Broker) workerOf(user string) *worker {
	return b.workers[maphash.String(b.seed, user)%workerCount]
}

// dispatch queues j on its user's worker. It blocks while that worker is
// backed up: pub/sub then buffers in Redis, and if Redis drops the
// connection for it, the re-subscription's backfill closes the gap.
func (b *Broker) dispatch(j job) {
	select {
	case b.workerOf(j.sub.user).jobs <- j:
	case <-b.ctx.Done():
	}
}

func (w *worker) run() {
	defer w.b.wg.Done()
	var retryC <-chan time.Time
	for {
		select {
		case j := <-w.jobs:
			w.handle(j)
		case <-retryC:
			retryC = nil
			w.retryFailed()
		case <-w.b.ctx.Done():
			return
		}
		if retryC == nil && len(w.retry) > 0 {
			retryC = time.After(retryDelay)
		}
	}
}

func (w *worker) handle(j job) {
	us := j.sub
	switch {
	case j.kind == jobActivate:
		w.activate(us)
	case us.gone.Load():
		delete(w.retry, us)
	case j.kind == jobResync:
		w.resync(us)
	case j.kind == jobMessage:
		w.message(us, j.payload)
	}
}

// activate records the user's head as the position to deliver after and
// releases Subscribe. Everything published from now on is either in the
// pub/sub queue behind this job or, if that connection breaks, in the
// stream after this head.
func (w *worker) activate(us *userSub) {
	if !us.gone.Load() {
		ctx, cancel := context.WithTimeout(w.b.ctx, opTimeout)
		us.pos, us.err = w.b.readHead(ctx, us.user)
		cancel()
	}
	close(us.ready)
}

// message delivers one published event, first reading from the stream
// whatever the node missed before it.
func (w *worker) message(us *userSub, payload string) {
	cur, env, ok := parseMessage(payload)
	if !ok {
		w.b.opts.Logger.Warn("malformed pub/sub message", "user", us.user)
		return
	}
	if _, failed := w.retry[us]; failed {
		// An earlier gap is still open; the retry reads this event too.
		return
	}
	if cur.Epoch != us.pos.Epoch {
		// A new history (the old one was lost): it starts at seq 1, all of
		// it newer than anything delivered or the head read at activation.
		us.pos = notification.Cursor{Epoch: cur.Epoch}
	}
	if us.delivered && cur.Seq <= us.pos.Seq {
		return // already delivered by a backfill
	}
	if cur.Seq > us.pos.Seq+1 && !w.fill(us, cur) {
		return
	}
	ev, err := notification.UnmarshalEnvelope(us.user, cur, []byte(env))
	if err != nil {
		w.b.opts.Logger.Warn("malformed event envelope", "user", us.user, "cursor", cur.String(), "err", err)
		return
	}
	w.deliver(us, ev)
}

// fill delivers the events between the position and cur from the stream.
// It reports whether cur may be delivered now; if the read failed, the
// subscription is queued for a retry that will also read cur.
func (w *worker) fill(us *userSub, cur notification.Cursor) bool {
	ctx, cancel := context.WithTimeout(w.b.ctx, opTimeout)
	defer cancel()
	head, msgs, err := w.b.readRange(ctx, us.user, streamID(us.pos.Seq+1), streamID(cur.Seq-1), 0)
	if err != nil {
		w.failed(us, err)
		return false
	}
	if head.Epoch != cur.Epoch {
		// The history was replaced after cur was published: what was
		// missed went with it.
		w.b.opts.Logger.Warn("events lost with their history", "user", us.user, "after", us.pos.String(), "before", cur.String())
		return true
	}
	w.b.metrics.backfillOK.Inc()
	want := cur.Seq - 1 - us.pos.Seq
	after := us.pos
	w.deliverEntries(us, cur.Epoch, msgs)
	if uint64(len(msgs)) < want {
		w.lost(us, after, cur)
	}
	return true
}

// lost tells the user's sessions that events between after and before can
// no longer be delivered (trimmed from the stream before a backfill reached
// them): they get a reset and reload the inbox, instead of a silent gap.
func (w *worker) lost(us *userSub, after, before notification.Cursor) {
	w.b.metrics.backfillLost.Inc()
	w.b.opts.Logger.Warn("events missed on pub/sub are no longer retained", "user", us.user, "after", after.String(), "before", before.String())
	w.b.handler.Deliver(notification.NewResetEvent(us.user, notification.Cursor{}))
}

// resync delivers everything after the position from the stream: after a
// re-subscription, or to retry a failed backfill.
func (w *worker) resync(us *userSub) {
	ctx, cancel := context.WithTimeout(w.b.ctx, opTimeout)
	defer cancel()
	head, msgs, err := w.b.readRange(ctx, us.user, streamID(us.pos.Seq+1), "+", 0)
	if err == nil && !head.IsZero() && head.Epoch != us.pos.Epoch {
		// A new history began while the node was not listening: all of it
		// is new to the node.
		us.pos = notification.Cursor{Epoch: head.Epoch}
		head, msgs, err = w.b.readRange(ctx, us.user, "-", "+", 0)
	}
	if err != nil {
		w.failed(us, err)
		return
	}
	delete(w.retry, us)
	w.b.metrics.backfillOK.Inc()
	if head.Epoch == us.pos.Epoch {
		after := us.pos
		complete := head.Seq <= after.Seq || (len(msgs) > 0 && firstSeq(msgs) == after.Seq+1)
		w.deliverEntries(us, head.Epoch, msgs)
		if !complete {
			w.lost(us, after, head)
		}
	}
}

func firstSeq(msgs []redis.XMessage) uint64 {
	seq, _ := seqOf(msgs[0].ID)
	return seq
}

func (w *worker) failed(us *userSub, err error) {
	w.b.metrics.backfillFailed.Inc()
	if _, again := w.retry[us]; !again {
		w.b.opts.Logger.Warn("reading missed events failed; will retry", "user", us.user, "err", err)
	}
	w.retry[us] = struct{}{}
}

func (w *worker) retryFailed() {
	for us := range w.retry {
		if us.gone.Load() {
			delete(w.retry, us)
			continue
		}
		w.resync(us)
	}
}

// deliverEntries delivers stream entries of epoch beyond the position.
func (w *worker) deliverEntries(us *userSub, epoch string, msgs []redis.XMessage) {
	events, err := decodeEntries(us.user, epoch, msgs)
	if err != nil {
		w.b.opts.Logger.Warn("undecodable history entry", "user", us.user, "err", err)
		return
	}
	for _, ev := range events {
		if us.delivered && ev.Cursor.Seq <= us.pos.Seq {
			continue
		}
		w.deliver(us, ev)
	}
}

func (w *worker) deliver(us *userSub, ev *notification.Event) {
	us.pos, us.delivered = ev.Cursor, true
	w.b.handler.Deliver(ev)
}

// parseMessage splits "<epoch> <seq> <envelope>".
func parseMessage(payload string) (notification.Cursor, string, bool) {
	epoch, rest, ok1 := strings.Cut(payload, " ")
	seqStr, env, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || epoch == "" {
		return notification.Cursor{}, "", false
	}
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if err != nil || seq == 0 {
		return notification.Cursor{}, "", false
	}
	return notification.Cursor{Epoch: epoch, Seq: seq}, env, true
}
