// Package lograte keeps a repeated line from flooding the log: a Limiter
// lets one line through per key and period, and that line says how many
// it held back since the last one.
package lograte

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// maxKeys bounds the memory of a Limiter whose keys come from clients
// (origins, users): past it, keys share one slot.
const maxKeys = 4096

// overflowKey is the slot of keys that found the table full.
const overflowKey = "\x00overflow"

// Limiter allows one line per key per period. The zero value is not
// usable; make one with New. It is safe for concurrent use.
type Limiter struct {
	period time.Duration
	now    func() time.Time

	mu    sync.Mutex
	keys  map[string]*entry
	swept time.Time // when the table was last swept
}

type entry struct {
	last       time.Time
	suppressed int
}

// New returns a Limiter allowing one line per key per period.
func New(period time.Duration) *Limiter { return NewWithClock(period, time.Now) }

// NewWithClock is New reading the time from now, for tests.
func NewWithClock(period time.Duration, now func() time.Time) *Limiter {
	return &Limiter{period: period, now: now, keys: make(map[string]*entry)}
}

// Allow reports whether a line for key may be written now and, if so, how
// many lines for key it held back since the last one it allowed.
func (l *Limiter) Allow(key string) (ok bool, suppressed int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys[key]
	if e == nil {
		if len(l.keys) >= maxKeys-1 && now.Sub(l.swept) >= l.period {
			l.sweepLocked(now)
		}
		if len(l.keys) >= maxKeys-1 {
			key = overflowKey
			e = l.keys[key]
		}
		if e == nil {
			l.keys[key] = &entry{last: now}
			return true, 0
		}
	}
	if now.Sub(e.last) < l.period {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return true, n
}

// sweepLocked forgets keys whose period has passed with nothing held back.
func (l *Limiter) sweepLocked(now time.Time) {
	l.swept = now
	for k, e := range l.keys {
		if e.suppressed == 0 && now.Sub(e.last) >= l.period {
			delete(l.keys, k)
		}
	}
}

// Log writes msg at level through log when Allow(key) lets it, adding
// "suppressed" with the count held back when there was any.
func (l *Limiter) Log(log *slog.Logger, level slog.Level, key, msg string, args ...any) {
	ok, n := l.Allow(key)
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Log(context.Background(), level, msg, args...)
}
