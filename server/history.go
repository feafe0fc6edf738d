package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/store/boltstore"
	"github.com/heraldhq/herald/pkg/store/histlog"
)

// openHistory opens the embedded node's history log in the data directory.
// Histories that earlier versions kept in the bbolt file are moved into
// the log first, under their epoch, so cursors clients hold stay valid.
// The move builds the log in a side directory and renames it into place,
// so a crash part-way leaves the old histories where they were.
func openHistory(dataDir string, st *boltstore.Store, r broker.Retention, log *slog.Logger) (*histlog.Store, error) {
	dir := filepath.Join(dataDir, "history")
	opts := histlog.Options{Retention: r}
	inBolt, err := st.HasHistory()
	if err != nil {
		return nil, err
	}
	_, statErr := os.Stat(dir)
	if inBolt && errors.Is(statErr, os.ErrNotExist) {
		if err := importHistory(dir, st, opts); err != nil {
			return nil, fmt.Errorf("move histories into the history log: %w", err)
		}
		log.Info("histories moved into the history log", "dir", dir)
	}
	hist, err := histlog.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	if inBolt {
		if err := st.DropHistory(); err != nil {
			hist.Close()
			return nil, err
		}
	}
	return hist, nil
}

func importHistory(dir string, st *boltstore.Store, opts histlog.Options) error {
	tmp := dir + ".import"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	h, err := histlog.Open(tmp, opts)
	if err != nil {
		return err
	}
	ctx := context.Background()
	err = h.Import(ctx, st.Epoch(), func(add histlog.ImportFunc) error { return st.EachHistory(ctx, add) })
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(dir))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
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
