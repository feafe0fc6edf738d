package main

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/token"
	"github.com/heraldhq/herald/server/cmd/herald/loadgen"
)

// The floor is only useful while the load tool can drive it: every
// notification sent must arrive, once.
func TestLoadToolDrivesTheFloor(t *testing.T) {
	srv := httptest.NewServer(newHandler())
	defer srv.Close()
	key := []byte("floor-test-secret-0123456789abcdef")
	opts := loadgen.Options{
		BaseURL: srv.URL, APIKey: "x", Transport: "ws", Sessions: 20, Sources: 1, Timeout: time.Minute,
		MintToken: func(user string) (string, error) {
			return token.Mint(key, token.Claims{Subject: user, SessionID: user, ExpiresAt: time.Now().Add(time.Hour)})
		},
	}
	ctx := context.Background()
	uni, err := loadgen.Unicast(ctx, loadgen.UnicastOptions{Options: opts, Messages: 200, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	if uni.Sent != 200 || uni.Delivered != 200 || uni.SendErrors != 0 {
		t.Fatalf("unicast: sent %d, delivered %d, errors %d; want 200, 200, 0", uni.Sent, uni.Delivered, uni.SendErrors)
	}
	fan, err := loadgen.Fanout(ctx, loadgen.FanoutOptions{Options: opts, Rounds: 3})
	if err != nil {
		t.Fatal(err)
	}
	if fan.Incomplete != 0 || fan.Users != 20 {
		t.Fatalf("fanout: %d of %d rounds incomplete, %d users", fan.Incomplete, fan.Rounds, fan.Users)
	}
}
