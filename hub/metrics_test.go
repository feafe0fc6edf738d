package hub

import (
	"context"
	"errors"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/transport"
)

// failingWriter fails every write.
type failingWriter struct{ *recorder }

func (failingWriter) WriteEvents(time.Time, []*notification.Event) error {
	return errors.New("connection reset")
}

// TestSessionsClosedAreCountedByReason: each way a session ends is
// counted once, under its reason, whichever side ended it.
func TestSessionsClosedAreCountedByReason(t *testing.T) {
	closedBy := func(m *Metrics, r transport.CloseReason) float64 {
		var d dto.Metric
		if err := m.sessionsClosed[r].Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetCounter().GetValue()
	}
	ctx := context.Background()
	tests := []struct {
		reason transport.CloseReason
		label  string
		run    func(t *testing.T, m *Metrics)
	}{
		{transport.CloseClient, "client_close", func(t *testing.T, m *Metrics) {
			h := New(newStubBroker(), nil, Options{Metrics: m})
			defer h.Shutdown(ctx)
			s, _ := h.Attach(ctx, AttachRequest{User: "a", Writer: newRecorder()})
			h.Detach(s)
			h.Detach(s) // a second Detach is not a second close
		}},
		{transport.CloseSlowConsumer, "slow_consumer", func(t *testing.T, m *Metrics) {
			b := newStubBroker()
			h := New(b, nil, Options{Metrics: m, SessionQueue: 4, WriteTimeout: time.Minute})
			defer h.Shutdown(ctx)
			slow := newRecorder()
			slow.block = make(chan struct{})
			defer close(slow.block)
			s, _ := h.Attach(ctx, AttachRequest{User: "slow", Writer: slow})
			defer h.Detach(s)
			for _, ev := range b.add("slow", 10) {
				h.Dispatch(ev)
			}
			<-slow.closed
		}},
		{transport.CloseWriteFailed, "write_failed", func(t *testing.T, m *Metrics) {
			b := newStubBroker()
			h := New(b, nil, Options{Metrics: m})
			defer h.Shutdown(ctx)
			w := failingWriter{newRecorder()}
			s, _ := h.Attach(ctx, AttachRequest{User: "a", Writer: w})
			defer h.Detach(s)
			for _, ev := range b.add("a", 1) {
				h.Dispatch(ev)
			}
			<-w.closed
		}},
		{transport.CloseTokenExpired, "token_expired", func(t *testing.T, m *Metrics) {
			h := New(newStubBroker(), nil, Options{Metrics: m, KeepAlive: 160 * time.Millisecond})
			defer h.Shutdown(ctx)
			rec := newRecorder()
			s, _ := h.Attach(ctx, AttachRequest{User: "a", Writer: rec, Expires: time.Now().Add(50 * time.Millisecond)})
			defer h.Detach(s)
			<-rec.closed
		}},
		{transport.CloseTooManySessions, "too_many_sessions", func(t *testing.T, m *Metrics) {
			h := New(newStubBroker(), nil, Options{Metrics: m, MaxSessionsPerUser: 1})
			defer h.Shutdown(ctx)
			first := newRecorder()
			s1, _ := h.Attach(ctx, AttachRequest{User: "a", Writer: first})
			s2, _ := h.Attach(ctx, AttachRequest{User: "a", Writer: newRecorder()})
			<-first.closed
			h.Detach(s1)
			h.Detach(s2) // the client's own close: counted as client_close, not here
		}},
		{transport.CloseShutdown, "shutdown", func(t *testing.T, m *Metrics) {
			h := New(newStubBroker(), nil, Options{Metrics: m})
			rec := newRecorder()
			s, _ := h.Attach(ctx, AttachRequest{User: "a", Writer: rec})
			go func() { <-rec.closed; h.Detach(s) }()
			if err := h.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.label, func(t *testing.T) {
			if got := tc.reason.String(); got != tc.label {
				t.Fatalf("reason %d is labelled %q, want %q", tc.reason, got, tc.label)
			}
			m := NewMetrics(nil)
			tc.run(t, m)
			if got := closedBy(m, tc.reason); got != 1 {
				t.Errorf("%s: counted %v, want 1", tc.label, got)
			}
			var total float64
			for r := range transport.NumCloseReasons {
				total += closedBy(m, transport.CloseReason(r))
			}
			want := 1.0
			if tc.reason == transport.CloseTooManySessions {
				want = 2 // the evicted session and the one the client closed
			}
			if total != want {
				t.Errorf("%s: %v sessions counted closed in all, want %v", tc.label, total, want)
			}
		})
	}
}
