package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/store/boltstore"
)

// TestHistoriesMoveFromTheBoltFile: a data directory written by a version
// that kept histories in herald.db opens with those histories in the
// history log, under the same epoch, so a client's cursor still resumes.
func TestHistoriesMoveFromTheBoltFile(t *testing.T) {
	cfg := testConfig(t)
	st, err := boltstore.Open(filepath.Join(cfg.DataDir, "herald.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var events []*notification.Event
	for i := 1; i <= 3; i++ {
		ev, err := notification.NewEvent(&notification.Notification{
			ID: fmt.Sprintf("n%d", i), User: "alice", Title: fmt.Sprintf("old %d", i), CreatedAt: time.Now().UTC(),
		})
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	if err := st.Append(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	cursor := events[0].Cursor.String()
	st.Close()

	n := startNodeWith(t, cfg)
	status, body := n.do(http.MethodGet, "/v1/notifications?since="+cursor, mintToken(t, "alice"), nil)
	var inbox inboxResponse
	if err := json.Unmarshal(body, &inbox); status != http.StatusOK || err != nil || inbox.Reset || len(inbox.Notifications) != 2 {
		t.Fatalf("inbox after the move: %d %s", status, body)
	}
	sent := n.mustSend([]string{"alice"}, "new")
	if got, want := sent.Notifications[0].Cursor, events[2].Cursor.Epoch+"-4"; got != want {
		t.Fatalf("first cursor after the move %s, want %s", got, want)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "history.import")); !os.IsNotExist(err) {
		t.Fatalf("import directory left behind: %v", err)
	}
}
