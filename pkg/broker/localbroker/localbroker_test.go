package localbroker_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/broker/brokertest"
	"github.com/heraldhq/herald/pkg/broker/localbroker"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/store/boltstore"
)

func newBroker(t *testing.T, h broker.Handler, r broker.Retention) broker.Broker {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "h.db"), boltstore.Options{Retention: r})
	if err != nil {
		t.Fatal(err)
	}
	b := localbroker.New(st, h, localbroker.Options{})
	t.Cleanup(func() { b.Close(); st.Close() })
	return b
}

func TestConformance(t *testing.T) { brokertest.Run(t, newBroker) }

func BenchmarkPublish(b *testing.B) {
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "h.db"), boltstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	br := localbroker.New(st, func(*notification.Event) {}, localbroker.Options{})
	defer br.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := br.Publish(ctx, []*notification.Event{brokertest.Event("u", "t")}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
