package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

func TestFrameNotificationShape(t *testing.T) {
	m := &Message{ID: "n1", User: "alice", Type: "message.sent", Title: "Bob", Body: "Hello!",
		URL: "/chat/c1", Tag: "c1", Urgency: "normal", Data: map[string]any{"conversationId": "c1"},
		Created: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), TTL: time.Hour}
	b, err := Frame(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"notification","notification":{"id":"n1","user":"alice","type":"message.sent","title":"Bob","body":"Hello!","url":"/chat/c1","tag":"c1","urgency":"normal","data":{"conversationId":"c1"},"created_at":"2026-11-22T10:00:00Z"}}`
	if string(b) != want {
		t.Fatalf("frame\n got %s\nwant %s", b, want)
	}
}

func TestFrameRetract(t *testing.T) {
	b, err := Frame(&Message{ID: "n1", Tag: "c1", Retract: true, Title: "ignored"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"retract","id":"n1","tag":"c1"}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
}

func TestFrameCarriesTheBadgeAndClears(t *testing.T) {
	three, zero := 3, 0
	for _, tc := range []struct {
		name string
		m    *Message
		want string
	}{
		{"notification", &Message{ID: "n1", Title: "Bob", Badge: &three, Created: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)},
			`{"type":"notification","notification":{"id":"n1","user":"","title":"Bob","created_at":"2026-11-22T10:00:00Z"},"badge":3}`},
		{"retraction", &Message{ID: "n1", Tag: "c1", Retract: true, Badge: &zero}, `{"type":"retract","id":"n1","tag":"c1","badge":0}`},
		{"clearing", &Message{ID: "read:x", Clear: []string{"n1", "n2"}, Tag: "c1", Badge: &zero}, `{"type":"read","ids":["n1","n2"],"tag":"c1","badge":0}`},
		{"clearing, badge unknown", &Message{ID: "read:x", Clear: []string{"n1"}}, `{"type":"read","ids":["n1"]}`},
	} {
		b, err := Frame(tc.m)
		if err != nil || string(b) != tc.want {
			t.Errorf("%s: got %s (%v), want %s", tc.name, b, err, tc.want)
		}
	}
}

// TestFitKeepsTheNewestIDsOfAClearingPush: a read of a long conversation
// names more ids than a push holds; the newest, still on screen, stay.
func TestFitKeepsTheNewestIDsOfAClearingPush(t *testing.T) {
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("01JD%022d", i)
	}
	b, err := Fit(&Message{ID: "read:x", Clear: ids}, 3800, Frame)
	if err != nil || len(b) > 3800 {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
	var f struct{ IDs []string }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.IDs) < 50 || f.IDs[len(f.IDs)-1] != ids[999] || !slices.Equal(f.IDs, ids[1000-len(f.IDs):]) {
		t.Fatalf("kept %d ids, last %q", len(f.IDs), f.IDs[len(f.IDs)-1])
	}
}

func TestFitDropsDataThenCutsBodyOnRuneBoundary(t *testing.T) {
	body := strings.Repeat("héllo wörld ✓ ", 400) // multi-byte runes throughout
	m := &Message{ID: "n1", Title: "t", Body: body, Data: map[string]any{"big": strings.Repeat("x", 500)}}
	for _, limit := range []int{3800, 1000, 200} {
		b, err := Fit(m, limit, Frame)
		if err != nil {
			t.Fatalf("limit %d: %v", limit, err)
		}
		if len(b) > limit {
			t.Fatalf("limit %d: got %d bytes", limit, len(b))
		}
		var f struct{ Notification Message }
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		n := f.Notification
		if n.Data != nil {
			t.Errorf("limit %d: data kept", limit)
		}
		if !utf8.ValidString(n.Body) || !strings.HasSuffix(n.Body, "…") || !strings.HasPrefix(body, strings.TrimSuffix(n.Body, "…")) {
			t.Errorf("limit %d: body not cut cleanly: %q…", limit, n.Body[:min(40, len(n.Body))])
		}
	}
	if m.Data == nil || m.Body != body {
		t.Fatal("Fit changed the caller's message")
	}
}

func TestFitKeepsSmallMessagesWhole(t *testing.T) {
	m := &Message{ID: "n1", Body: "hi", Data: map[string]any{"k": "v"}}
	b, _ := Fit(m, 3800, Frame)
	want, _ := Frame(m)
	if string(b) != string(want) {
		t.Fatalf("got %s", b)
	}
}

func TestFitGivesUp(t *testing.T) {
	_, err := Fit(&Message{ID: strings.Repeat("i", 100), Body: "x"}, 50, Frame)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := ParseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestStatusError(t *testing.T) {
	h := http.Header{"Retry-After": {"3"}}
	for _, tc := range []struct {
		status int
		want   Outcome
		ok     bool
	}{
		{201, 0, true}, {200, 0, true}, {202, 0, true},
		{404, Gone, false}, {410, Gone, false},
		{429, Retry, false}, {500, Retry, false}, {503, Retry, false}, {408, Retry, false},
		{400, Failed, false}, {401, Failed, false}, {403, Failed, false}, {413, Failed, false},
	} {
		o, ok := OutcomeOf(StatusError(tc.status, h, ""))
		if ok != tc.ok || (!ok && o != tc.want) {
			t.Errorf("status %d: outcome %s ok %v, want %s ok %v", tc.status, o, ok, tc.want, tc.ok)
		}
	}
	var pe *Error
	if errors.As(StatusError(429, h, ""), &pe); pe.RetryAfter != 3*time.Second {
		t.Errorf("RetryAfter = %s", pe.RetryAfter)
	}
}

type scripted struct {
	calls atomic.Int32
	errs  []error
}

func (s *scripted) Platform() string { return "test" }
func (s *scripted) Send(context.Context, *Device, *Message) error {
	i := int(s.calls.Add(1)) - 1
	if i < len(s.errs) {
		return s.errs[i]
	}
	return nil
}

func fast() Policy {
	return Policy{MaxAttempts: 4, Base: time.Millisecond, Cap: 5 * time.Millisecond, Rand: func() float64 { return 1 }}
}

func TestRetryingRetriesTemporaryFailuresThenSucceeds(t *testing.T) {
	s := &scripted{errs: []error{&Error{Outcome: Retry, Status: 429}, &Error{Outcome: Retry, Status: 503}}}
	if err := Retrying(s, fast()).Send(context.Background(), &Device{}, &Message{}); err != nil {
		t.Fatal(err)
	}
	if n := s.calls.Load(); n != 3 {
		t.Fatalf("calls = %d, want 3", n)
	}
}

func TestRetryingStopsOnGoneAndFailed(t *testing.T) {
	for _, o := range []Outcome{Gone, Failed} {
		s := &scripted{errs: []error{&Error{Outcome: o}}}
		err := Retrying(s, fast()).Send(context.Background(), &Device{}, &Message{})
		if got, _ := OutcomeOf(err); got != o || s.calls.Load() != 1 {
			t.Errorf("%s: outcome %s after %d calls", o, got, s.calls.Load())
		}
	}
}

func TestRetryingGivesUpAfterMaxAttempts(t *testing.T) {
	e := &Error{Outcome: Retry, Status: 500}
	s := &scripted{errs: []error{e, e, e, e, e, e}}
	err := Retrying(s, fast()).Send(context.Background(), &Device{}, &Message{})
	if o, _ := OutcomeOf(err); o != Retry || s.calls.Load() != 4 {
		t.Fatalf("outcome %s after %d calls, want retry after 4", o, s.calls.Load())
	}
}

func TestRetryHonoursRetryAfterCapped(t *testing.T) {
	p := Policy{Base: time.Millisecond, Cap: 20 * time.Millisecond, Rand: func() float64 { return 0 }}
	if d := p.Backoff(0, &Error{Outcome: Retry, RetryAfter: 10 * time.Millisecond}); d != 10*time.Millisecond {
		t.Errorf("backoff = %s, want the Retry-After", d)
	}
	if d := p.Backoff(0, &Error{Outcome: Retry, RetryAfter: time.Hour}); d != 20*time.Millisecond {
		t.Errorf("backoff = %s, want the cap", d)
	}
}

func TestBackoffIsExponentialWithFullJitter(t *testing.T) {
	p := Policy{Base: 100 * time.Millisecond, Cap: time.Second, Rand: func() float64 { return 0.5 }}
	for i, want := range []time.Duration{50, 100, 200, 400, 500, 500} {
		if got := p.Backoff(i, errors.New("net")); got != want*time.Millisecond {
			t.Errorf("attempt %d: %s, want %s", i, got, want*time.Millisecond)
		}
	}
	if got := p.Backoff(200, errors.New("net")); got != 500*time.Millisecond {
		t.Errorf("huge attempt: %s", got)
	}
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := Policy{MaxAttempts: 10, Base: time.Hour, Cap: time.Hour, Rand: func() float64 { return 1 }}
	done := make(chan error, 1)
	go func() {
		done <- Do(ctx, p, func(context.Context) error { return &Error{Outcome: Retry, Status: 503} })
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled joined", err)
		}
		if o, _ := OutcomeOf(err); o != Retry {
			t.Fatalf("outcome = %s", o)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Do did not stop on cancel")
	}
}

type slow struct{ cur, peak atomic.Int32 }

func (s *slow) Platform() string { return "slow" }
func (s *slow) Send(context.Context, *Device, *Message) error {
	n := s.cur.Add(1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(5 * time.Millisecond)
	s.cur.Add(-1)
	return nil
}

func TestLimitBoundsConcurrency(t *testing.T) {
	s := &slow{}
	l := Limit(s, 3)
	done := make(chan struct{})
	for range 20 {
		go func() { _ = l.Send(context.Background(), &Device{}, &Message{}); done <- struct{}{} }()
	}
	for range 20 {
		<-done
	}
	if p := s.peak.Load(); p > 3 || p < 1 {
		t.Fatalf("peak concurrency %d, want 1..3", p)
	}
}

func FuzzFit(f *testing.F) {
	f.Add("Bob", "Hello!", 100)
	f.Add("ü", strings.Repeat("✓<>&\"", 300), 200)
	f.Fuzz(func(t *testing.T, title, body string, limit int) {
		limit = 60 + abs(limit)%4000
		b, err := Fit(&Message{ID: "n1", Title: title, Body: body, Data: map[string]any{"k": body}}, limit, Frame)
		if err != nil {
			if !errors.Is(err, ErrTooLarge) {
				t.Fatal(err)
			}
			return
		}
		if len(b) > limit || !json.Valid(b) {
			t.Fatalf("%d bytes (limit %d), valid %v", len(b), limit, json.Valid(b))
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
