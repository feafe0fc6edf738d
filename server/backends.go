package server

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/heraldhq/herald/hub"
	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/broker/localbroker"
	"github.com/heraldhq/herald/pkg/idempotency"
	"github.com/heraldhq/herald/pkg/ingest"
	"github.com/heraldhq/herald/pkg/queue"
	"github.com/heraldhq/herald/pkg/store/boltstore"
	"github.com/heraldhq/herald/pkg/store/queuelog"
	"github.com/heraldhq/herald/server/config"
)

// backends are the broker and stores of one mode, closed together.
type backends struct {
	broker   broker.Broker
	idem     idempotency.Store
	presence hub.Presence // nil in embedded mode: the hub's counts are the truth
	queue    queue.Queue
	members  ingest.Members
	counter  ingest.Counter
	prefs    ingest.KVPreferences
	push     pushStore
	once     idempotency.Store // guards webhook events against processing twice
	closers  []func() error
}

func (b *backends) close() error {
	var errs []error
	for i := len(b.closers) - 1; i >= 0; i-- {
		if err := b.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func queueOptions(cfg *config.Config) queue.Options {
	return queue.Options{MaxAttempts: cfg.WebhookMaxAttempts, RetryAfter: cfg.WebhookRetryAfter, DedupeTTL: cfg.WebhookDedupeTTL}
}

// openEmbedded opens the on-disk store under the data directory and an
// in-process broker over it.
func openEmbedded(cfg *config.Config, r broker.Retention, log *slog.Logger) (*backends, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	st, err := boltstore.Open(filepath.Join(cfg.DataDir, "herald.db"), boltstore.Options{})
	if err != nil {
		return nil, fmt.Errorf("open embedded store: %w", err)
	}
	hist, err := openHistory(cfg.DataDir, r)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("open history log: %w", err)
	}
	q, err := openQueue(cfg, st, log)
	if err != nil {
		hist.Close()
		st.Close()
		return nil, fmt.Errorf("open webhook queue: %w", err)
	}
	b := localbroker.New(embeddedLog{Store: hist, bolt: st}, nil, localbroker.Options{Logger: log})
	return &backends{
		broker:  b,
		idem:    st,
		queue:   q,
		members: st,
		push:    st,
		once:    st.ProcessOnce(),
		counter: ingest.NewMemoryCounter(),
		prefs:   ingest.KVPreferences{KV: st, NotFound: func(err error) bool { return errors.Is(err, boltstore.ErrNotFound) }},
		closers: []func() error{st.Close, hist.Close, q.Close, b.Close},
	}, nil
}

// openQueue opens the embedded webhook queue's log in the data directory.
func openQueue(cfg *config.Config, st *boltstore.Store, log *slog.Logger) (*queuelog.Log, error) {
	q, err := queuelog.Open(filepath.Join(cfg.DataDir, "queue"), st.QueueBacking(), queuelog.Options{Options: queueOptions(cfg), Logger: log})
	if err != nil {
		return nil, err
	}
	return q, nil
}
