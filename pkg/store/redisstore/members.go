package redisstore

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/notification"
)

func (s *Store) membersKey(conv string) string { return s.opts.Prefix + "members:{" + conv + "}" }

// Members returns the known members of conversation conv, sorted.
func (s *Store) Members(ctx context.Context, conv string) ([]string, error) {
	m, err := s.c.SMembers(ctx, s.membersKey(conv)).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore members of %q: %w", conv, err)
	}
	sort.Strings(m)
	return m, nil
}

// ApplyMembership records a membership change in one transaction: Deleted
// drops the conversation, Set replaces its members, then Add and Remove
// apply.
func (s *Store) ApplyMembership(ctx context.Context, m *notification.Membership) error {
	key := s.membersKey(m.Conversation)
	toAny := func(list []string) []any {
		out := make([]any, 0, len(list))
		for _, u := range list {
			if u != "" && len(u) <= 256 {
				out = append(out, u)
			}
		}
		return out
	}
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if m.Deleted || m.Set != nil {
			p.Del(ctx, key)
		}
		if m.Deleted {
			return nil
		}
		if add := toAny(append(append([]string(nil), m.Set...), m.Add...)); len(add) > 0 {
			p.SAdd(ctx, key, add...)
		}
		if rm := toAny(m.Remove); len(rm) > 0 {
			p.SRem(ctx, key, rm...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore membership of %q: %w", m.Conversation, err)
	}
	return nil
}

// incrScript counts a hit; the first hit of a window starts its expiry.
var incrScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`)

// Incr counts a hit of key in a window that starts at its first hit.
func (s *Store) Incr(ctx context.Context, key string, window time.Duration) (int64, error) {
	n, err := incrScript.Run(ctx, s.c, []string{s.opts.Prefix + "count:" + key}, window.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("redisstore incr: %w", err)
	}
	return n, nil
}
