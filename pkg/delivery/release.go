package delivery

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"

	"github.com/heraldhq/herald/pkg/idempotency"
)

// Releasing idempotency keys after a failure.
//
// A publish that fails releases its key so that the sender's retry can do
// the work. When the store cannot be reached at that moment (the Redis
// primary of the key has just died), or when the claim itself failed
// mid-way (its reply lost with the connection, so the claim may stand),
// the key would stay claimed for all of InUse and every retry would be
// answered 409 meanwhile. Such releases are tried again in the background
// until the store answers or the claim has expired anyway. A claim names
// its holder and a release frees only its own holder's claim, so a late
// release never frees the claim of a retry that came after it.

// Background release limits: how many keys wait at most (more are left to
// expire), how often they are tried, and how long one try may take.
const (
	maxPendingReleases = 4096
	releaseRetry       = 250 * time.Millisecond
	releaseTimeout     = time.Second
)

type pendingRelease struct {
	keys        idempotency.Store
	key, holder string
	until       time.Time // the claim has expired by then
}

// releaser retries failed releases on one goroutine, started when one is
// waiting and gone when none is.
type releaser struct {
	mu      sync.Mutex
	pending []pendingRelease
	running bool
	closed  bool
	stop    chan struct{}
	idle    chan struct{} // closed when the goroutine has ended; nil if none ran
}

func newReleaser() *releaser { return &releaser{stop: make(chan struct{})} }

// newHolder returns a claim holder unique to one attempt.
func newHolder() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// release frees key now, or if the store does not answer, later.
func (r *releaser) release(ctx context.Context, keys idempotency.Store, key, holder string, until time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	err := keys.Release(ctx, key, holder)
	cancel()
	if err != nil {
		r.later(keys, key, holder, until)
	}
}

// later queues a release for the background.
func (r *releaser) later(keys idempotency.Store, key, holder string, until time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || len(r.pending) >= maxPendingReleases {
		return // the claim expires by itself
	}
	r.pending = append(r.pending, pendingRelease{keys: keys, key: key, holder: holder, until: until})
	if !r.running {
		r.running = true
		r.idle = make(chan struct{})
		go r.run(r.idle)
	}
}

func (r *releaser) run(idle chan struct{}) {
	defer close(idle)
	t := time.NewTimer(releaseRetry)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-r.stop:
			return
		}
		r.mu.Lock()
		batch := r.pending
		r.pending = nil
		r.mu.Unlock()
		keep := r.try(batch)
		r.mu.Lock()
		r.pending = append(keep, r.pending...)
		if len(r.pending) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		t.Reset(releaseRetry)
	}
}

// try releases what it can of batch and returns the rest. After the first
// failure the store is taken to be still away and the rest wait for the
// next round, so a dead store costs one timeout per round, not one per key.
func (r *releaser) try(batch []pendingRelease) []pendingRelease {
	var keep []pendingRelease
	failed := false
	now := time.Now()
	for _, p := range batch {
		switch {
		case now.After(p.until):
			continue
		case failed:
			keep = append(keep, p)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		err := p.keys.Release(ctx, p.key, p.holder)
		cancel()
		if err != nil {
			failed = true
			keep = append(keep, p)
		}
	}
	return keep
}

// close stops the retries; waiting releases are left to expire.
func (r *releaser) close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.stop)
	}
	idle := r.idle
	r.mu.Unlock()
	if idle != nil {
		<-idle
	}
}
