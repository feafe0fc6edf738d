package webhook

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
)

func TestTimestampReadsEveryForm(t *testing.T) {
	want := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, in := range []string{
		`1795341600`, `"1795341600"`, `1795341600000`, `"1795341600000"`, `1795341600.0`,
		`"2026-11-22T10:00:00Z"`, `"2026-11-22T11:00:00+01:00"`,
	} {
		var ts Timestamp
		if err := json.Unmarshal([]byte(in), &ts); err != nil || !ts.Equal(want) {
			t.Errorf("%s: %v, %v", in, ts.Time, err)
		}
	}
	for _, in := range []string{`null`, `"soon"`, `-5`, `0`, `true`, `{}`, `1e300`} {
		var ts Timestamp
		if err := json.Unmarshal([]byte(in), &ts); err != nil || !ts.IsZero() {
			t.Errorf("%s: %v, %v; want the zero time", in, ts.Time, err)
		}
	}
}

func TestDecodeNamesTheField(t *testing.T) {
	var v struct {
		A struct {
			B []struct {
				C string `json:"c"`
			} `json:"b"`
		} `json:"a"`
	}
	tests := []struct {
		raw, path, field string
	}{
		{`{"a":{"b":[{"c":1}]}}`, "", "a.b.c"},
		{`{"a":{"b":[{"c":1}]}}`, "data", "data.a.b.c"},
		{`{"a":"x"}`, "payload", "payload.a"},
		{`null`, "data", "data"},
		{``, "data", "data"},
	}
	for _, tt := range tests {
		err := Decode([]byte(tt.raw), tt.path, &v)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("Decode(%s, %q) = %v, want field %q", tt.raw, tt.path, err, tt.field)
		}
	}
	for _, raw := range []string{``, `{`, `[]`, `"x"`, `{"a":1}x`} {
		err := Decode([]byte(raw), "", &v)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "" {
			t.Errorf("Decode(%q) = %v, want Malformed", raw, err)
		}
	}
}

func TestIDTakesStringsAndNumbers(t *testing.T) {
	var v struct {
		ID ID `json:"id"`
	}
	for in, want := range map[string]ID{`{"id":"m1"}`: "m1", `{"id":1234567890123}`: "1234567890123", `{"id":null}`: ""} {
		if err := json.Unmarshal([]byte(in), &v); err != nil || v.ID != want {
			t.Errorf("%s: %q, %v", in, v.ID, err)
		}
		v.ID = ""
	}
	var fe *FieldError
	if err := Decode([]byte(`{"id":{}}`), "data", &v); !errors.As(err, &fe) || fe.Field != "data.id" {
		t.Errorf("object id: %v", err)
	}
}

func TestRecipientsDropsSenderEmptyAndDuplicates(t *testing.T) {
	got := Recipients([]string{"a", "", "bob", "c", "a", "x"}, "bob", "x")
	if !reflect.DeepEqual(got, []string{"a", "c"}) {
		t.Fatalf("Recipients = %v", got)
	}
	if got := Recipients([]string{"bob"}, "bob"); got == nil || len(got) != 0 {
		t.Fatalf("Recipients of only the sender = %#v, want empty and non-nil", got)
	}
}

func TestCheckSkew(t *testing.T) {
	now := time.Unix(1795341600, 0)
	for d, stale := range map[time.Duration]bool{
		0: false, MaxSkew: false, -MaxSkew: false,
		MaxSkew + time.Millisecond: true, -MaxSkew - time.Millisecond: true,
	} {
		if err := CheckSkew(now.Add(d), now); errors.Is(err, ErrStale) != stale {
			t.Errorf("skew %s: %v", d, err)
		}
	}
}

func TestEqualSignatures(t *testing.T) {
	mac := HMACSHA256([]byte("k"), []byte("hel"), []byte("lo"))
	const hexMAC = "406e4b43f87095aa86ca6299d25e875921fefa180f02043bb29bec5681c0c2d0" // openssl
	if !EqualHex(hexMAC, mac) || !EqualHex(" "+hexMAC+" ", mac) || EqualHex(hexMAC[:62], mac) || EqualHex("", mac) {
		t.Error("EqualHex")
	}
	const b64 = "QG5LQ/hwlaqGymKZ0l6HWSH++hgPAgQ7spvsVoHAwtA="
	if !EqualBase64(b64, mac) || !EqualBase64(b64[:len(b64)-1], mac) || EqualBase64(hexMAC, mac) {
		t.Error("EqualBase64")
	}
}

func TestCheckEventCatchesBrokenInvariants(t *testing.T) {
	ok := Event{Provider: "p", ID: "1", Kind: KindMessage, Conversation: "c", Sender: "bob", Recipients: []string{"alice"}}
	if err := CheckEvent(ok); err != nil {
		t.Fatal(err)
	}
	bad := []func(e *Event){
		func(e *Event) { e.Recipients = append(e.Recipients, "bob") },
		func(e *Event) { e.Exclude = []string{"alice"} },
		func(e *Event) { e.ID = "" },
		func(e *Event) { e.Provider = "" },
		func(e *Event) { e.Recipients, e.Conversation = nil, "" },
		func(e *Event) { e.Kind = KindNotification; e.Recipients = nil },
		func(e *Event) { e.Kind = KindMembership },
		func(e *Event) { e.Urgency = "urgent" },
		func(e *Event) { e.Members = &notification.Membership{} },
	}
	for i, f := range bad {
		e := ok
		e.Recipients = append([]string(nil), ok.Recipients...)
		f(&e)
		if CheckEvent(e) == nil {
			t.Errorf("case %d: %+v passed", i, e)
		}
	}
}
