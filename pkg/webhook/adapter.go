package webhook

// What the provider adapters share: signature comparison, timestamp
// windows, JSON decoding that names the failing field, recipient lists and
// derived event ids. webhook.go is the contract; this file is the kit.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// HMACSHA256 returns HMAC-SHA256 under key of the parts, concatenated.
func HMACSHA256(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// EqualHex reports whether sig, hex in either case, encodes mac. The
// comparison of the decoded bytes takes constant time.
func EqualHex(sig string, mac []byte) bool {
	got, err := hex.DecodeString(strings.TrimSpace(sig))
	if err != nil {
		return false
	}
	return hmac.Equal(got, mac)
}

// EqualBase64 reports whether sig, standard base64 with or without
// padding, encodes mac. The comparison of the decoded bytes takes constant
// time.
func EqualBase64(sig string, mac []byte) bool {
	sig = strings.TrimSpace(sig)
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		got, err = base64.RawStdEncoding.DecodeString(sig)
		if err != nil {
			return false
		}
	}
	return hmac.Equal(got, mac)
}

// Unauthorized returns an error wrapping ErrUnauthorized. The reason must
// not contain secrets or signatures: it may be logged.
func Unauthorized(reason string) error {
	return fmt.Errorf("%w: %s", ErrUnauthorized, reason)
}

// CheckSkew returns an error wrapping ErrStale when ts is more than MaxSkew
// away from now, in either direction.
func CheckSkew(ts, now time.Time) error {
	d := now.Sub(ts)
	if d > MaxSkew || d < -MaxSkew {
		return fmt.Errorf("%w: %s from now", ErrStale, d.Round(time.Second))
	}
	return nil
}

// ParseUnix parses a signed-timestamp header: a decimal integer counting
// units (time.Second or time.Millisecond) since the Unix epoch.
func ParseUnix(s string, unit time.Duration) (time.Time, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q: not an integer", s)
	}
	switch unit {
	case time.Millisecond:
		return time.UnixMilli(n), nil
	case time.Second:
		return time.Unix(n, 0), nil
	}
	return time.Time{}, fmt.Errorf("timestamp unit %s not supported", unit)
}

// Timestamp is a time in a payload, in whichever form the platform writes
// it: a JSON number or numeric string counting Unix seconds or milliseconds
// (told apart by size: from 1e11 on it is milliseconds, since 1e11 ms is
// March 1973 and 1e11 s the year 5138), or an RFC 3339 string. Anything else decodes to the zero time rather than
// failing: times in payloads are informational, never required.
type Timestamp struct{ time.Time }

// UnmarshalJSON implements json.Unmarshaler.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	t.Time = time.Time{}
	s := string(bytes.TrimSpace(b))
	if s == "null" || s == "" {
		return nil
	}
	if s[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return nil
		}
		if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
			t.Time = ts.UTC()
			return nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || f > 1e16 {
		return nil
	}
	if f >= 1e11 {
		t.Time = time.UnixMilli(int64(f)).UTC()
	} else {
		t.Time = time.Unix(int64(f), 0).UTC()
	}
	return nil
}

// Decode unmarshals raw, found at path in the body ("" for the body
// itself), into v. Malformed JSON gives Malformed; a value of the wrong type
// gives a *FieldError naming its full path; an absent or null raw at a
// path gives Missing(path).
func Decode(raw []byte, path string, v any) error {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		if path == "" {
			return Malformed(errors.New("empty body"))
		}
		return Missing(path)
	}
	err := json.Unmarshal(raw, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := JoinPath(path, te.Field)
		if field == "" {
			return Malformed(fmt.Errorf("expected a JSON %s", jsonKind(te.Type)))
		}
		return &FieldError{Field: field, Reason: fmt.Sprintf("expected %s, got %s", jsonKind(te.Type), te.Value)}
	}
	return Malformed(err)
}

// JoinPath joins JSON path segments with dots, skipping empty ones.
func JoinPath(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		if p == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[json.Number]() {
		return "number"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return "value"
}

// ID is a string or number in a payload, kept as its decimal or string
// form (Sendbird's message ids are numbers, most others strings).
type ID string

// UnmarshalJSON implements json.Unmarshaler.
func (id *ID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*id = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = ID(s)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return &json.UnmarshalTypeError{Value: "non-id", Type: reflect.TypeFor[string]()}
		}
		*id = ID(n.String())
	}
	return nil
}

// Recipients returns ids in order without empty strings, duplicates and
// the ids in drop (the sender, excluded users). It returns an empty,
// non-nil slice when nothing is left: nil would mean "the conversation's
// members".
func Recipients(ids []string, drop ...string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id == "" || slices.Contains(drop, id) || slices.Contains(out, id) {
			continue
		}
		out = append(out, id)
	}
	return out
}

// DerivedID builds an event id from payload fields for platforms whose
// webhooks carry none: the parts joined by ':' (empty parts kept, so the
// positions stay fixed). Two deliveries of the same event give the same id;
// the provider documents which fields it uses.
func DerivedID(parts ...string) string { return strings.Join(parts, ":") }

// BodyID derives an event id from the raw body, for events with no stable
// key in the payload: a retried delivery resends the same bytes.
func BodyID(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:16])
}

// CheckEvent reports the first broken invariant of an event a provider
// returned: the pipeline relies on these, and the providers' fuzz tests
// assert them.
func CheckEvent(e Event) error {
	if e.Provider == "" {
		return errors.New("event: no provider")
	}
	if e.Kind < KindIgnore || e.Kind > KindRead {
		return fmt.Errorf("event: unknown kind %d", e.Kind)
	}
	if e.Kind == KindIgnore {
		return nil
	}
	if e.ID == "" {
		return errors.New("event: no id")
	}
	if e.Sender != "" && slices.Contains(e.Recipients, e.Sender) {
		return fmt.Errorf("event: sender %q among the recipients", e.Sender)
	}
	for _, r := range e.Recipients {
		if r == "" {
			return errors.New("event: empty recipient")
		}
		if slices.Contains(e.Exclude, r) {
			return fmt.Errorf("event: recipient %q also excluded", r)
		}
	}
	switch e.Kind {
	case KindMessage, KindUpdate, KindRetract:
		if e.Recipients == nil && e.Conversation == "" {
			return errors.New("event: neither recipients nor conversation")
		}
	case KindNotification:
		if len(e.Recipients) == 0 {
			return errors.New("event: notification without recipients")
		}
	case KindMembership:
		if e.Members == nil || e.Members.Conversation == "" {
			return errors.New("event: membership without conversation")
		}
	case KindRead:
		if len(e.Recipients) == 0 || (e.Conversation == "" && e.Tag == "") {
			return errors.New("event: read without readers or conversation")
		}
	}
	if m := e.Members; m != nil && m.Conversation == "" {
		return errors.New("event: members without conversation")
	}
	if e.Urgency != "" && e.Urgency != "high" && e.Urgency != "normal" && e.Urgency != "low" {
		return fmt.Errorf("event: urgency %q", e.Urgency)
	}
	if e.TTL < 0 {
		return fmt.Errorf("event: negative ttl %d", e.TTL)
	}
	return nil
}

// VerifyBodyHMAC checks the scheme several platforms share: header holds
// HMAC-SHA256(key, raw body), compared in constant time by equal (EqualHex
// or EqualBase64). There is no timestamp; the pipeline's dedupe stops
// replays. An empty key refuses everything.
func VerifyBodyHMAC(provider, header string, key []byte, h http.Header, body []byte, equal func(string, []byte) bool) error {
	if len(key) == 0 {
		return Unauthorized(provider + ": no secret configured")
	}
	sig := h.Get(header)
	if sig == "" {
		return Unauthorized(provider + ": missing " + header)
	}
	if !equal(sig, HMACSHA256(key, body)) {
		return Unauthorized(provider + ": signature mismatch")
	}
	return nil
}
