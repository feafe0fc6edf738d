package lograte

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestOneLinePerPeriodWithTheCountHeldBack(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(time.Minute)
	l.now = func() time.Time { return now }
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	for range 1000 {
		l.Log(log, slog.LevelWarn, "a", "backed up")
	}
	l.Log(log, slog.LevelWarn, "b", "other key")
	now = now.Add(time.Minute)
	l.Log(log, slog.LevelWarn, "a", "backed up")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
	}
	if strings.Contains(lines[0], "suppressed") || !strings.Contains(lines[2], "suppressed=999") {
		t.Fatalf("lines do not carry the count held back:\n%s", buf.String())
	}
}

func TestKeysStayBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(time.Minute)
	l.now = func() time.Time { return now }
	allowed := 0
	for i := range 3 * maxKeys {
		if ok, _ := l.Allow(fmt.Sprint("origin-", i)); ok {
			allowed++
		}
	}
	if len(l.keys) > maxKeys {
		t.Fatalf("%d keys kept, want at most %d", len(l.keys), maxKeys)
	}
	if allowed != maxKeys {
		t.Fatalf("%d lines allowed in one period from distinct keys, want %d (the rest share one slot)", allowed, maxKeys)
	}
	now = now.Add(2 * time.Minute)
	if ok, _ := l.Allow("fresh"); !ok {
		t.Fatal("a new key after the period is refused")
	}
}
