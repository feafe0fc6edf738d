package loadgen

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/webhook/talkjs"
)

// TestIngestSendsVerifiableWebhooksAndCountsAnswers: every webhook the
// load tool sends verifies with the provider's own verifier and parses,
// and the result counts exactly what the server answered.
func TestIngestSendsVerifiableWebhooksAndCountsAnswers(t *testing.T) {
	p := talkjs.New("lg-secret")
	var n, bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := p.Verify(r.Header, body, time.Now()); err != nil {
			bad.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if _, err := p.Parse(r.Header, body); err != nil {
			bad.Add(1)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if n.Add(1)%10 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	res, err := Ingest(context.Background(), IngestOptions{
		Options: Options{BaseURL: srv.URL, Timeout: time.Minute}, Provider: "talkjs", Secret: "lg-secret", Messages: 200, Workers: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	if bad.Load() != 0 {
		t.Fatalf("%d webhooks did not verify or parse", bad.Load())
	}
	if res.Sent != 200 || res.Accepted != 180 || res.Errors != 20 || res.Statuses[503] != 20 || res.TimeTo200.Max <= 0 {
		t.Fatalf("result = %+v", res)
	}
}
