package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// MemoryCounter is a Counter for one node (the embedded mode). Windows that
// ended are dropped as new hits arrive, so it holds only live windows.
type MemoryCounter struct {
	mu      sync.Mutex
	windows map[string]memWindow
	now     func() time.Time
	hits    int
}

type memWindow struct {
	n   int64
	end time.Time
}

// NewMemoryCounter returns an empty counter.
func NewMemoryCounter() *MemoryCounter {
	return &MemoryCounter{windows: map[string]memWindow{}, now: time.Now}
}

// Incr counts a hit of key in a window that starts at its first hit.
func (c *MemoryCounter) Incr(_ context.Context, key string, window time.Duration) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.hits++
	if c.hits%1024 == 0 {
		for k, w := range c.windows {
			if !now.Before(w.end) {
				delete(c.windows, k)
			}
		}
	}
	w := c.windows[key]
	if !now.Before(w.end) {
		w = memWindow{end: now.Add(window)}
	}
	w.n++
	c.windows[key] = w
	return w.n, nil
}

// KV is the small key/value space of either store.
type KV interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, value []byte) error
}

// KVPreferences keeps preferences as JSON in a KV store.
type KVPreferences struct {
	KV KV
	// NotFound tells the store's "no such key" error.
	NotFound func(error) bool
}

func prefsKey(user string) string { return "prefs:" + user }

// Preferences returns user's preferences, the zero value if none are set.
func (p KVPreferences) Preferences(ctx context.Context, user string) (*Preferences, error) {
	b, err := p.KV.Get(ctx, prefsKey(user))
	if err != nil {
		if p.NotFound(err) {
			return &Preferences{}, nil
		}
		return nil, fmt.Errorf("preferences of %q: %w", user, err)
	}
	var pr Preferences
	if err := json.Unmarshal(b, &pr); err != nil {
		return nil, fmt.Errorf("preferences of %q: %w", user, err)
	}
	return &pr, nil
}

// SetPreferences validates and stores user's preferences.
func (p KVPreferences) SetPreferences(ctx context.Context, user string, pr *Preferences) error {
	if err := pr.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(pr)
	if err != nil {
		return err
	}
	if err := p.KV.Put(ctx, prefsKey(user), b); err != nil {
		return fmt.Errorf("preferences of %q: %w", user, err)
	}
	return nil
}
