package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/redistest"
	"github.com/heraldhq/herald/pkg/store/redisstore"
	"github.com/heraldhq/herald/pkg/store/storetest"
)

func TestIdempotency(t *testing.T) {
	srv := redistest.Start(t)
	st := redisstore.New(srv.Client(), redisstore.Options{})
	defer st.Close()
	storetest.Idempotency(t, st)
}

// TestPresenceForgetsDeadNodes: a node that stops heartbeating without
// leaving (killed) stops counting once its liveness key expires.
func TestPresenceForgetsDeadNodes(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a := redisstore.New(srv.Client(), redisstore.Options{NodeID: "a", PresenceTTL: time.Second})
	defer a.Close()
	b := redisstore.New(srv.Client(), redisstore.Options{NodeID: "b", PresenceTTL: time.Second})
	for _, st := range []*redisstore.Store{a, b, b} {
		if err := st.Join(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := a.Count(ctx, "alice"); err != nil || n != 3 {
		t.Fatalf("count %d %v", n, err)
	}
	if err := b.Leave(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if n, _ := a.Count(ctx, "alice"); n != 2 {
		t.Fatalf("after leave: %d", n)
	}
	// Kill b: stop its heartbeat and let the key expire (Close would
	// delete it at once; a killed process does not).
	b.StopHeartbeat()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := a.Count(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead node still counted: %d", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPresenceSurvivesRedisLosingData: after a restart without persistence
// the node writes its counts again at the next heartbeat.
func TestPresenceSurvivesRedisLosingData(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	st := redisstore.New(srv.Client(), redisstore.Options{PresenceTTL: 600 * time.Millisecond})
	defer st.Close()
	if err := st.Join(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // past the first heartbeat
	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if n, err := st.Count(ctx, "alice"); err == nil && n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("presence not restored after Redis lost its data")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
