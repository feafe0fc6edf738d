package server

import (
	"context"
	"errors"
	"log/slog"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/server/config"
)

func openRedis(ctx context.Context, cfg *config.Config, r broker.Retention, h broker.Handler, log *slog.Logger) (*backends, error) {
	return nil, errors.New("not yet")
}
