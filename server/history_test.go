package server

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/store/boltstore"
)

// TestHistoriesMoveFromTheBoltFile: a data directory written by a version
// that kept histories in herald.db opens with those histories in the
// history log, under the same epoch, so a client's cursor still resumes.
func TestHistoriesMoveFromTheBoltFile(t *testing.T) {
	cfg := testConfig(t)
	// Earlier versions: one bucket per user under "history", keyed by the
	// big-endian sequence, with the user's head as the bucket's sequence.
	path := filepath.Join(cfg.DataDir, "herald.db")
	st, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	epoch := st.Epoch()
	st.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		ub, err := tx.Bucket([]byte("history")).CreateBucket([]byte("alice"))
		if err != nil {
			return err
		}
		for seq := uint64(1); seq <= 3; seq++ {
			ev, err := notification.NewEvent(&notification.Notification{
				ID: fmt.Sprintf("n%d", seq), User: "alice", Title: fmt.Sprintf("old %d", seq), CreatedAt: time.Now().UTC(),
			})
			if err != nil {
				return err
			}
			if err := ub.Put(binary.BigEndian.AppendUint64(nil, seq), ev.MarshalEnvelope()); err != nil {
				return err
			}
		}
		return ub.SetSequence(3)
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	cursor := epoch + "-1"

	n := startNodeWith(t, cfg)
	status, body := n.do(http.MethodGet, "/v1/notifications?since="+cursor, mintToken(t, "alice"), nil)
	var inbox inboxResponse
	if err := json.Unmarshal(body, &inbox); status != http.StatusOK || err != nil || inbox.Reset || len(inbox.Notifications) != 2 {
		t.Fatalf("inbox after the move: %d %s", status, body)
	}
	sent := n.mustSend([]string{"alice"}, "new")
	if got, want := sent.Notifications[0].Cursor, epoch+"-4"; got != want {
		t.Fatalf("first cursor after the move %s, want %s", got, want)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "history.import")); !os.IsNotExist(err) {
		t.Fatalf("import directory left behind: %v", err)
	}
}
