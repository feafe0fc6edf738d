package talkjs

import (
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/webhook/webhooktest"
)

// BenchmarkVerifyParse is the adapter's cost per webhook: the HMAC check
// over the raw body, then the parse into an event.
func BenchmarkVerifyParse(b *testing.B) {
	body := webhooktest.Fixture(b, "message_sent.json")
	p := New("bench-secret")
	now := time.Now()
	sig, ts := Sign("bench-secret", now, body)
	h := map[string][]string{"X-Talkjs-Signature": {sig}, "X-Talkjs-Timestamp": {ts}}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := p.Verify(h, body, now); err != nil {
			b.Fatal(err)
		}
		if _, err := p.Parse(h, body); err != nil {
			b.Fatal(err)
		}
	}
}
