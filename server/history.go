package server

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/store/boltstore"
	"github.com/heraldhq/herald/pkg/store/histlog"
)

// openHistory opens the embedded node's history log in the data directory.
func openHistory(dataDir string, r broker.Retention) (*histlog.Store, error) {
	return histlog.Open(filepath.Join(dataDir, "history"), histlog.Options{Retention: r})
}

// embeddedLog is the history log as the local broker sees it: its
// retention sweep also expires the bbolt file's keys (idempotency,
// webhook dedupe).
type embeddedLog struct {
	*histlog.Store
	bolt *boltstore.Store
}

func (l embeddedLog) Sweep(ctx context.Context) error {
	return errors.Join(l.Store.Sweep(ctx), l.bolt.Sweep(ctx))
}

func (l embeddedLog) Ready(ctx context.Context) error {
	if err := l.Store.Ready(ctx); err != nil {
		return err
	}
	return l.bolt.Ready(ctx)
}
