package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Get returns the value stored under key, or ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := s.c.Get(ctx, s.kvKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore get %q: %w", key, err)
	}
	return v, nil
}

// Put stores value under key, without expiry.
func (s *Store) Put(ctx context.Context, key string, value []byte) error {
	if err := s.c.Set(ctx, s.kvKey(key), value, 0).Err(); err != nil {
		return fmt.Errorf("redisstore put %q: %w", key, err)
	}
	return nil
}

// PutIfAbsent stores value under key unless key has a value, and returns
// the value stored now: of several nodes racing, all get the first's.
func (s *Store) PutIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error) {
	old, err := s.c.SetArgs(ctx, s.kvKey(key), value, redis.SetArgs{Mode: "NX", Get: true}).Result()
	if errors.Is(err, redis.Nil) {
		return value, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore put if absent %q: %w", key, err)
	}
	return []byte(old), nil
}
