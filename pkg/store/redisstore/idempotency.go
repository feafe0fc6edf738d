package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// An idempotency record is "p" followed by its holder while its request
// is in progress and "d" followed by the stored result once completed.
const (
	idemPending = "p"
	idemDone    = 'd'
)

// Reserve claims key for ttl. fresh reports that the caller owns it now;
// otherwise prior holds the stored result, or is nil while another request
// with the key is still in progress. Claim and lookup are one command (SET
// NX GET), so exactly one of concurrent callers gets fresh.
func (s *Store) Reserve(ctx context.Context, key, holder string, ttl time.Duration) (prior []byte, fresh bool, err error) {
	if ttl <= 0 {
		return nil, false, fmt.Errorf("redisstore reserve: ttl %s is not positive", ttl)
	}
	old, err := s.c.SetArgs(ctx, s.idemKey(key), idemPending+holder, redis.SetArgs{Mode: "NX", TTL: ttl, Get: true}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("redisstore reserve: %w", err)
	}
	if len(old) > 0 && old[0] == idemDone {
		return append([]byte{}, old[1:]...), false, nil
	}
	return nil, false, nil
}

// Complete stores the result for key, kept for ttl.
func (s *Store) Complete(ctx context.Context, key string, result []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("redisstore complete: ttl %s is not positive", ttl)
	}
	v := make([]byte, 0, 1+len(result))
	v = append(append(v, idemDone), result...)
	if err := s.c.Set(ctx, s.idemKey(key), v, ttl).Err(); err != nil {
		return fmt.Errorf("redisstore complete: %w", err)
	}
	return nil
}

// releaseScript deletes KEYS[1] if it still holds ARGV[1].
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Release forgets key if holder's claim is still on it, so a failed
// request can be retried.
func (s *Store) Release(ctx context.Context, key, holder string) error {
	if err := releaseScript.Run(ctx, s.c, []string{s.idemKey(key)}, idemPending+holder).Err(); err != nil {
		return fmt.Errorf("redisstore release: %w", err)
	}
	return nil
}
