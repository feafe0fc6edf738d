package push

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Policy is how a temporary failure (Outcome Retry) is retried: exponential
// backoff with full jitter, sleep = Rand() × min(Cap, Base × 2^attempt), or
// the provider's Retry-After when it gave one (never more than Cap).
type Policy struct {
	MaxAttempts int           // attempts in all, the first included (default 5)
	Base        time.Duration // first backoff ceiling (default 500ms)
	Cap         time.Duration // longest sleep, Retry-After included (default 30s)
	// Rand returns a number in [0, 1); nil uses math/rand/v2.
	Rand func() float64
}

// DefaultPolicy is what a zero Policy means.
var DefaultPolicy = Policy{MaxAttempts: 5, Base: 500 * time.Millisecond, Cap: 30 * time.Second}

func (p Policy) withDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultPolicy.MaxAttempts
	}
	if p.Base <= 0 {
		p.Base = DefaultPolicy.Base
	}
	if p.Cap <= 0 {
		p.Cap = DefaultPolicy.Cap
	}
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	return p
}

// Backoff is the sleep before retry number attempt (0 for the first retry)
// after err.
func (p Policy) Backoff(attempt int, err error) time.Duration {
	p = p.withDefaults()
	var pe *Error
	if errors.As(err, &pe) && pe.RetryAfter > 0 {
		return min(pe.RetryAfter, p.Cap)
	}
	ceil := p.Cap
	if attempt < 62 {
		if d := p.Base << attempt; d > 0 && d < ceil {
			ceil = d
		}
	}
	return time.Duration(p.Rand() * float64(ceil))
}

// Do calls f until it succeeds, fails with an outcome other than Retry, the
// attempts run out or ctx is done. It returns f's last error; when ctx ends
// the wait, ctx's error is joined to it (OutcomeOf still sees the *Error).
func Do(ctx context.Context, p Policy, f func(context.Context) error) error {
	p = p.withDefaults()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for attempt := 0; ; attempt++ {
		err := f(ctx)
		if o, ok := OutcomeOf(err); ok || o != Retry || attempt+1 >= p.MaxAttempts {
			return err
		}
		if ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		d := p.Backoff(attempt, err)
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-timer.C:
		}
	}
}

// Retrying returns a Sender that retries s's temporary failures by p.
func Retrying(s Sender, p Policy) Sender { return retrying{s, p} }

type retrying struct {
	s Sender
	p Policy
}

func (r retrying) Platform() string { return r.s.Platform() }

func (r retrying) Send(ctx context.Context, d *Device, m *Message) error {
	return Do(ctx, r.p, func(ctx context.Context) error { return r.s.Send(ctx, d, m) })
}

// Limit returns a Sender that runs at most n sends of s at once, so one
// slow provider cannot hold every worker. A send waiting for a slot gives up
// when ctx is done, with ctx's error (which OutcomeOf counts as Retry).
func Limit(s Sender, n int) Sender {
	if n <= 0 {
		n = 1
	}
	return limited{s, make(chan struct{}, n)}
}

type limited struct {
	s   Sender
	sem chan struct{}
}

func (l limited) Platform() string { return l.s.Platform() }

func (l limited) Send(ctx context.Context, d *Device, m *Message) error {
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.sem }()
	return l.s.Send(ctx, d, m)
}

// ParseRetryAfter reads a Retry-After header value: delay-seconds or an
// HTTP date (RFC 9110 §10.2.3). Missing, malformed or past values give 0.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(365*24*3600))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// StatusError classifies an HTTP answer the way Web Push and webhooks
// answer: 2xx is nil; 404/410 Gone; 408, 429 and 5xx Retry (with
// Retry-After); anything else Failed.
func StatusError(status int, h http.Header, reason string) error {
	if status >= 200 && status < 300 {
		return nil
	}
	e := &Error{Outcome: Failed, Status: status, Reason: reason}
	switch {
	case status == http.StatusNotFound || status == http.StatusGone:
		e.Outcome = Gone
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		e.Outcome = Retry
		if h != nil {
			e.RetryAfter = ParseRetryAfter(h.Get("Retry-After"), time.Now())
		}
	}
	return e
}
