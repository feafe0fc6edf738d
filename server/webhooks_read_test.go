package server

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestProviderReadEventsClearTheReadersConversation: each provider's
// message event (its documentation's fixture) notifies its recipients;
// the provider's read event (likewise) marks the readers' notifications
// of that conversation read, and nothing else: another recipient of the
// message, another user's notification with the same tag, and the
// reader's notification of another conversation stay unread.
func TestProviderReadEventsClearTheReadersConversation(t *testing.T) {
	for _, tc := range []struct {
		provider, message, read string
		readers                 []string
	}{
		{"stream", "message_new.json", "message_read.json", []string{"alice"}},
		{"talkjs", "message_sent.json", "message_read.json", []string{"alice"}},
		{"cometchat", "message_sent_user.json", "message_read_receipt.json", []string{"cometchat-uid-2"}},
		{"sendbird", "message_send.json", "message_read.json", []string{"alice", "carol"}},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			n := startNode(t, webhookConfig)
			fixture := func(name string) []byte {
				b, err := os.ReadFile(filepath.Join("..", "pkg", "webhook", tc.provider, "testdata", name))
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			post := func(body []byte) {
				t.Helper()
				if status, out := n.postWebhook(tc.provider, body, signed(t, tc.provider, body, time.Now())); status != http.StatusOK || out["status"] != "accepted" {
					t.Fatalf("webhook: %d %v", status, out)
				}
			}
			post(fixture(tc.message))
			candidates := []string{"alice", "bob", "carol", "dave", "cometchat-uid-1", "cometchat-uid-2"}
			reader := tc.readers[0]
			waitFor(t, reader+" notified", func() bool { return len(n.inbox(reader)) == 1 })
			tag := n.inbox(reader)[0].Tag
			if tag == "" {
				t.Fatalf("%s's notification has no tag", reader)
			}
			time.Sleep(200 * time.Millisecond) // the other recipients' notifications
			before := map[string]int{}
			for _, u := range candidates {
				before[u], _ = n.unread(u)
			}
			n.mustSend([]string{"zoe"}, "same tag, another user")
			if status, body := n.send(map[string]any{"to": []string{"zoe"}, "title": "z", "tag": tag}); status != http.StatusAccepted {
				t.Fatalf("send: %d %s", status, body)
			}
			if status, body := n.send(map[string]any{"to": []string{reader}, "title": "elsewhere", "tag": "another-conversation"}); status != http.StatusAccepted {
				t.Fatalf("send: %d %s", status, body)
			}

			post(fixture(tc.read))
			for _, r := range tc.readers {
				waitFor(t, r+"'s conversation read", func() bool {
					_, tags := n.unread(r)
					return tags[tag] == 0
				})
			}
			if total, tags := n.unread(reader); total != 1 || tags["another-conversation"] != 1 {
				t.Errorf("%s: unread %d %v, want only the other conversation's", reader, total, tags)
			}
			for _, u := range candidates {
				if slices.Contains(tc.readers, u) {
					continue
				}
				if total, _ := n.unread(u); total != before[u] {
					t.Errorf("%s, who read nothing: unread %d, was %d", u, total, before[u])
				}
			}
			if total, _ := n.unread("zoe"); total != 2 {
				t.Errorf("zoe: unread %d, want 2", total)
			}
		})
	}
}
