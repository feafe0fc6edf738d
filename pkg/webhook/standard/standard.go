// Package standard adapts webhooks signed the Standard Webhooks way
// (standardwebhooks.com) and carrying Herald's native notification format:
// the endpoint /webhooks/herald, for apps that send their own
// notifications. Sign is also what Herald's outgoing push webhook uses.
package standard

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	herald "github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/webhook"
)

// Name is the provider's endpoint segment: /webhooks/herald.
const Name = "herald"

const (
	headerID        = "webhook-id"
	headerTimestamp = "webhook-timestamp"
	headerSignature = "webhook-signature"
	secretPrefix    = "whsec_"
)

// Event types of the native format.
const (
	TypeSend    = "notification.send"
	TypeRetract = "notification.retract"
)

// Provider verifies Standard Webhooks signatures and parses the native
// format. It is safe for concurrent use.
type Provider struct {
	keys [][]byte
}

var _ webhook.Provider = (*Provider)(nil)

// New returns a Provider accepting signatures made with any of secrets,
// so a secret can be rotated: configure the new one beside the old, switch
// the sender, then drop the old. Each secret is "whsec_" followed by the
// base64 key (the prefix may be left out).
func New(secrets ...string) (*Provider, error) {
	if len(secrets) == 0 {
		return nil, errors.New("standard webhooks: no secret")
	}
	p := &Provider{}
	for i, s := range secrets {
		k, err := key(s)
		if err != nil {
			return nil, fmt.Errorf("standard webhooks: secret %d: %w", i+1, err)
		}
		p.keys = append(p.keys, k)
	}
	return p, nil
}

func key(secret string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil {
		return nil, errors.New(`not "whsec_" followed by base64`)
	}
	if len(k) == 0 {
		return nil, errors.New("empty key")
	}
	return k, nil
}

// Sign returns the webhook-signature header value for a message: "v1,"
// and the base64 HMAC-SHA256, under the secret's key, of id, ".", the Unix
// seconds of ts, ".", and body. The webhook-timestamp header must carry
// the same seconds: strconv.FormatInt(ts.Unix(), 10).
func Sign(secret string, id string, ts time.Time, body []byte) (string, error) {
	k, err := key(secret)
	if err != nil {
		return "", fmt.Errorf("standard webhooks: %w", err)
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(k, id, strconv.FormatInt(ts.Unix(), 10), body)), nil
}

func mac(key []byte, id, ts string, body []byte) []byte {
	return webhook.HMACSHA256(key, []byte(id), []byte("."), []byte(ts), []byte("."), body)
}

// Name implements webhook.Provider.
func (p *Provider) Name() string { return Name }

var eventTypes = []string{TypeSend, TypeRetract}

// EventTypes implements webhook.Provider.
func (p *Provider) EventTypes() []string { return slices.Clone(eventTypes) }

// KnownEventTypes implements webhook.Provider: the native format has only
// the types Herald acts on.
func (p *Provider) KnownEventTypes() []string { return slices.Clone(eventTypes) }

// Verify implements webhook.Provider. webhook-signature holds one or more
// space-separated "v1,<base64>" entries; one matching any secret passes.
// Entries of other versions are skipped. The signature is checked before
// the timestamp, so only an authentic request can be reported as stale.
func (p *Provider) Verify(h http.Header, body []byte, now time.Time) error {
	id, rawTS, sigs := h.Get(headerID), strings.TrimSpace(h.Get(headerTimestamp)), h.Get(headerSignature)
	switch {
	case id == "":
		return webhook.Unauthorized("standard webhooks: missing " + headerID)
	case rawTS == "":
		return webhook.Unauthorized("standard webhooks: missing " + headerTimestamp)
	case sigs == "":
		return webhook.Unauthorized("standard webhooks: missing " + headerSignature)
	}
	ts, err := webhook.ParseUnix(rawTS, time.Second)
	if err != nil {
		return webhook.Unauthorized("standard webhooks: " + err.Error())
	}
	if !p.matches(id, rawTS, body, sigs) {
		return webhook.Unauthorized("standard webhooks: no matching signature")
	}
	return webhook.CheckSkew(ts, now)
}

func (p *Provider) matches(id, ts string, body []byte, sigs string) bool {
	macs := make([][]byte, len(p.keys))
	for i, k := range p.keys {
		macs[i] = mac(k, id, ts, body)
	}
	ok := false
	for _, entry := range strings.Fields(sigs) {
		version, sig, found := strings.Cut(entry, ",")
		if !found || version != "v1" {
			continue
		}
		for _, m := range macs {
			// Every entry is compared against every key: how many match
			// does not change the time taken.
			if webhook.EqualBase64(sig, m) {
				ok = true
			}
		}
	}
	return ok
}

type envelope struct {
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
	To   json.RawMessage `json:"to"`
}

// notification is the native payload's data.
type notification struct {
	To           []string          `json:"to"`
	Title        string            `json:"title"`
	Body         string            `json:"body"`
	URL          string            `json:"url"`
	Icon         string            `json:"icon"`
	Tag          string            `json:"tag"`
	Urgency      string            `json:"urgency"`
	TTL          int               `json:"ttl"`
	Data         map[string]any    `json:"data"`
	Conversation string            `json:"conversation"`
	Sender       string            `json:"sender"`
	ID           string            `json:"id"` // retract: the notification (or message) to close
	Created      webhook.Timestamp `json:"created_at"`
}

// Parse implements webhook.Provider. The body is
//
//	{"type":"notification.send","data":{"to":["alice"],"title":"…","body":"…",
//	 "url":"…","icon":"…","tag":"…","urgency":"high|normal|low","ttl":60,
//	 "data":{…},"conversation":"…","sender":"…"}}
//
// or the data object alone at the top level (type notification.send).
// notification.retract takes "to" and "id" and/or "tag". The event id is
// the webhook-id header, else the body's "id".
func (p *Provider) Parse(h http.Header, body []byte) (webhook.Event, error) {
	var env envelope
	if err := webhook.Decode(body, "", &env); err != nil {
		return webhook.Event{}, err
	}
	data, path := env.Data, "data"
	if env.To != nil {
		data, path = body, ""
		if env.Type == "" {
			env.Type = TypeSend
		}
	}
	if env.Type == "" {
		return webhook.Event{}, webhook.Missing("type")
	}
	ev := webhook.Event{Provider: Name, ID: h.Get(headerID), Type: env.Type}
	if ev.ID == "" {
		ev.ID = env.ID
	}
	if !slices.Contains(eventTypes, env.Type) {
		return ev, nil
	}
	if ev.ID == "" {
		return webhook.Event{}, webhook.Missing(headerID)
	}
	var n notification
	if err := webhook.Decode(data, path, &n); err != nil {
		return webhook.Event{}, err
	}
	at := func(f string) string { return webhook.JoinPath(path, f) }
	if len(n.To) == 0 {
		return webhook.Event{}, webhook.Missing(at("to"))
	}
	if slices.Contains(n.To, "") {
		return webhook.Event{}, &webhook.FieldError{Field: at("to"), Reason: "empty user id"}
	}
	switch n.Urgency {
	case "", "high", "normal", "low":
	default:
		return webhook.Event{}, &webhook.FieldError{Field: at("urgency"), Reason: `must be "high", "normal" or "low"`}
	}
	if n.TTL < 0 {
		return webhook.Event{}, &webhook.FieldError{Field: at("ttl"), Reason: "must not be negative"}
	}
	// The app wrote these, as it would through the API: it is told, as the
	// API tells it, rather than having the field dropped downstream.
	for _, f := range []struct{ name, value string }{{"url", n.URL}, {"icon", n.Icon}} {
		if err := herald.ValidURL(f.value); err != nil {
			return webhook.Event{}, &webhook.FieldError{Field: at(f.name), Reason: err.Error()}
		}
	}
	ev.Recipients = webhook.Recipients(n.To, n.Sender)
	if len(ev.Recipients) == 0 {
		return webhook.Event{Provider: Name, ID: ev.ID, Type: ev.Type}, nil // only to its sender
	}
	ev.Sender = n.Sender
	ev.Conversation = n.Conversation
	ev.Tag = n.Tag
	ev.Created = n.Created.Time
	ev.Data = n.Data
	if env.Type == TypeRetract {
		if n.ID == "" && n.Tag == "" {
			return webhook.Event{}, webhook.Missing(at("id"))
		}
		ev.Kind = webhook.KindRetract
		ev.RetractID = n.ID
		return ev, nil
	}
	if n.Title == "" && n.Body == "" {
		return webhook.Event{}, &webhook.FieldError{Field: at("title"), Reason: "title or body required"}
	}
	ev.Kind = webhook.KindNotification
	ev.Title = n.Title
	ev.Body = n.Body
	ev.URL = n.URL
	ev.Icon = n.Icon
	ev.Urgency = n.Urgency
	ev.TTL = n.TTL
	return ev, nil
}
