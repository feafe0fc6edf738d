package ratelimit

import (
	"log/slog"
	"sync"
	"time"
)

// Every lets one event per period through and counts the events it held
// back, so that a condition that repeats thousands of times a second is
// reported once a period with how often it happened. The zero Every lets
// every event through; use NewEvery.
type Every struct {
	period time.Duration
	now    func() time.Time

	mu         sync.Mutex
	next       time.Time
	suppressed int
}

// NewEvery returns an Every letting one event through per period.
func NewEvery(period time.Duration) *Every {
	return &Every{period: period, now: time.Now}
}

// Allow reports whether this event is the one of its period, and, when
// it is, how many events were held back since the last one let through.
func (e *Every) Allow() (ok bool, suppressed int) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if now.Before(e.next) {
		e.suppressed++
		return false, 0
	}
	e.next = now.Add(e.period)
	n := e.suppressed
	e.suppressed = 0
	return true, n
}

// Warn logs msg at warning level through l when Allow lets it, adding the
// "suppressed" count of the warnings it held back before.
func (e *Every) Warn(l *slog.Logger, msg string, args ...any) {
	if ok, n := e.Allow(); ok {
		l.Warn(msg, append(args, "suppressed", n)...)
	}
}
