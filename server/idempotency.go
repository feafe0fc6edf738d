package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/heraldhq/herald/pkg/notification"
)

// An idempotency key answers a retry of the same request with the first
// result, and refuses a different request under the same key (as Stripe
// does): the stored result carries the fingerprint of the request that
// produced it, so every node compares against the same one.

// fingerprintPrefix starts a stored result that carries its request's
// fingerprint. Results stored before fingerprints are bare JSON objects
// ('{'): they replay to any body, as they did.
const fingerprintPrefix = "sha256:"

// fingerprint is the sha256 of the canonical form of the request: the
// decoded request marshalled again, with the defaults the handler applies
// filled in and data's keys sorted. Not the raw body: a client that
// retries by serialising the same object again may space it or order its
// keys differently (a map in most languages), and that is the same
// request; fields Herald ignores do not change what was done either.
func (req *sendRequest) fingerprint() string {
	c := *req
	c.Type, c.Urgency = notification.Defaults(c.Type, c.Urgency)
	if len(c.Data) > 0 {
		dec := json.NewDecoder(bytes.NewReader(c.Data))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) == nil {
			if b, err := json.Marshal(v); err == nil { // map keys sorted
				c.Data = b
			}
		}
	}
	b, _ := json.Marshal(&c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// sealResult is what the idempotency store keeps: the fingerprint, a
// newline, the response body.
func sealResult(fp string, body []byte) []byte {
	b := make([]byte, 0, len(fingerprintPrefix)+len(fp)+1+len(body))
	b = append(b, fingerprintPrefix...)
	b = append(b, fp...)
	b = append(b, '\n')
	return append(b, body...)
}

// openResult splits a stored result; fp is empty for one stored without
// a fingerprint.
func openResult(rec []byte) (fp string, body []byte) {
	rest, ok := bytes.CutPrefix(rec, []byte(fingerprintPrefix))
	if !ok {
		return "", rec
	}
	fpb, body, ok := bytes.Cut(rest, []byte{'\n'})
	if !ok {
		return "", rec
	}
	return string(fpb), body
}
