package histlog

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/broker/brokertest"
	"github.com/heraldhq/herald/pkg/notification"
)

// BenchmarkAppend: one group commit (write and data sync) of batch events
// to as many users; batch=10000 is a fan-out's history append.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			events := make([]*notification.Event, size)
			for i := range events {
				events[i] = brokertest.EventAt(fmt.Sprintf("u%d", i), "t", time.Now())
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.Append(ctx, events); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/event")
		})
	}
}

// BenchmarkRange reads the newest 10 events of a user, as a reconnecting
// client's replay does.
func BenchmarkRange(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		batch := []*notification.Event{brokertest.EventAt("a", fmt.Sprint(i), time.Now()), brokertest.EventAt("b", fmt.Sprint(i), time.Now())}
		if err := s.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if evs, _, err := s.Range(ctx, "a", notification.Cursor{}, 10); err != nil || len(evs) != 10 {
			b.Fatal(len(evs), err)
		}
	}
}
