package notification

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func TestParseCursor(t *testing.T) {
	cases := []struct {
		in   string
		want Cursor
		ok   bool
	}{
		{"abc123-42", Cursor{"abc123", 42}, true},
		{"a-b-7", Cursor{}, false},
		{"e-0", Cursor{"e", 0}, true},
		{"-5", Cursor{}, false},
		{"abc-", Cursor{}, false},
		{"abc", Cursor{}, false},
		{"abc-x", Cursor{}, false},
		{"ab c-1", Cursor{}, false},
		{"abc-18446744073709551616", Cursor{}, false},
	}
	for _, tc := range cases {
		got, err := ParseCursor(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseCursor(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("round trip %q → %q", tc.in, got.String())
		}
	}
}

func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"abc-1", "", "-", "a-b-c", "x-99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			return
		}
		back, err := ParseCursor(c.String())
		if err != nil || back != c {
			t.Fatalf("%q parsed to %v, which does not round trip", s, c)
		}
	})
}

func TestEnvelopeRoundTrip(t *testing.T) {
	n := &Notification{ID: "01J", User: "alice", Title: "Hi", Body: "there", Tag: "c1",
		Data: json.RawMessage(`{"k":"v"}`), CreatedAt: time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC)}
	ev, err := NewEvent(n)
	if err != nil {
		t.Fatal(err)
	}
	cur := Cursor{"ep", 7}
	back, err := UnmarshalEnvelope("alice", cur, ev.MarshalEnvelope())
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != ev.ID || back.Tag != ev.Tag || back.Kind != ev.Kind || !back.Created.Equal(ev.Created) ||
		!bytes.Equal(back.Payload, ev.Payload) || back.Cursor != cur || back.User != "alice" {
		t.Fatalf("round trip mismatch: %+v vs %+v", back, ev)
	}
}

func FuzzUnmarshalEnvelope(f *testing.F) {
	ev, _ := NewEvent(&Notification{ID: "x", User: "u", Title: "t"})
	f.Add(ev.MarshalEnvelope())
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := UnmarshalEnvelope("u", Cursor{"e", 1}, b)
		if err != nil {
			return
		}
		if _, err := UnmarshalEnvelope("u", e.Cursor, e.MarshalEnvelope()); err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
	})
}

// TestNewEventsMatchesNewEvent: the shared-encoding path gives every
// recipient the payload of encoding their notification whole, whatever
// their user id holds.
func TestNewEventsMatchesNewEvent(t *testing.T) {
	n := Notification{
		Type: "message", Title: `Hi <there> & "you"`, Body: "b\u2028", URL: "https://x/y?a=1&b=2", Tag: "t",
		Urgency: UrgencyHigh, TTL: 30, Data: json.RawMessage(`{"k":[1,2]}`), CreatedAt: time.Date(2026, 11, 25, 12, 0, 0, 5, time.UTC),
	}
	users := []string{"alice", `we"ird`, `<b>&c`, "ü", "x\u2028y", `back\slash`, "tab\tbed"}
	ids := make([]string, len(users))
	for i := range ids {
		ids[i] = fmt.Sprintf("id-%d", i)
	}
	got, err := NewEvents(&n, users, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, user := range users {
		one := n
		one.ID, one.User = ids[i], user
		want, err := NewEvent(&one)
		if err != nil {
			t.Fatal(err)
		}
		g := got[i]
		if !bytes.Equal(g.Payload, want.Payload) || g.User != want.User || g.ID != want.ID || g.Tag != want.Tag ||
			g.Kind != want.Kind || !g.Created.Equal(want.Created) {
			t.Errorf("user %q:\n got %+v %s\nwant %+v %s", user, g, g.Payload, want, want.Payload)
		}
	}
	if _, err := NewEvents(&n, users, ids[:1]); err == nil {
		t.Error("accepted fewer ids than users")
	}
}

// TestDerivedIDIsStable: derived ids name notifications already stored and
// shown, so the derivation never changes.
func TestDerivedIDIsStable(t *testing.T) {
	cases := []struct {
		prefix string
		parts  []string
		want   string
	}{
		{"wh", []string{"talkjs", "message\x00m-1", "alice"}, "whJC0M9CJENRTYKKXH7P9VQB0XS4"},
	}
	for _, c := range cases {
		if got := DerivedID(c.prefix, c.parts...); got != c.want {
			t.Errorf("DerivedID(%q, %q) = %s, want %s", c.prefix, c.parts, got, c.want)
		}
	}
	if DerivedID("ik", "ab", "c") == DerivedID("ik", "a", "bc") {
		t.Error("parts collide by concatenation")
	}
}
