package hub

import "time"

// keepAliveLoop pings every session once per KeepAlive interval, a slice
// of the sessions about every 20 ms, so the pings never arrive as a burst
// that delays the notifications written beside them.
func (h *Hub) keepAliveLoop() {
	defer close(h.done)
	const tick = 20 * time.Millisecond
	w := pingWheel{hub: h, slices: max(1, int(h.opts.KeepAlive/(shardCount*tick)))}
	t := time.NewTicker(h.opts.KeepAlive / time.Duration(shardCount*w.slices))
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		for _, s := range w.turn() {
			s.keepAlive(now)
		}
	}
}

// pingWheel walks the shards one at a time and hands out each shard's
// sessions in slices equal parts, one part per turn: shardCount*slices
// turns visit every session once.
type pingWheel struct {
	hub          *Hub
	slices       int
	shard, slice int
	batch        []*Session
}

// turn returns the sessions to ping now, valid until the next turn.
func (w *pingWheel) turn() []*Session {
	if w.slice == w.slices {
		clear(w.batch)
		w.batch = w.batch[:0]
		w.slice = 0
		w.shard = (w.shard + 1) % shardCount
	}
	if w.slice == 0 {
		sh := &w.hub.shards[w.shard]
		sh.mu.RLock()
		for _, us := range sh.users {
			w.batch = append(w.batch, us.sessions...)
		}
		sh.mu.RUnlock()
	}
	n := len(w.batch)
	part := w.batch[n*w.slice/w.slices : n*(w.slice+1)/w.slices]
	w.slice++
	return part
}
