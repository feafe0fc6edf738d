package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/delivery"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/webhook"
)

// fakes for the processor's stores.

type members map[string][]string

func (m members) Members(_ context.Context, conv string) ([]string, error) { return m[conv], nil }
func (m members) ApplyMembership(_ context.Context, ch *notification.Membership) error {
	if ch.Set != nil {
		m[ch.Conversation] = append([]string(nil), ch.Set...)
	}
	m[ch.Conversation] = append(m[ch.Conversation], ch.Add...)
	return nil
}

type prefs map[string]*Preferences

func (p prefs) Preferences(_ context.Context, user string) (*Preferences, error) {
	if pr := p[user]; pr != nil {
		return pr, nil
	}
	return &Preferences{}, nil
}

type published struct {
	mu     sync.Mutex
	events []*notification.Event
}

func (p *published) Publish(_ context.Context, evs []*notification.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, evs...)
	return nil
}

func (p *published) notifications(t *testing.T) []notification.Notification {
	t.Helper()
	var out []notification.Notification
	for _, ev := range p.events {
		if ev.Kind != notification.KindNotification {
			continue
		}
		var n notification.Notification
		if err := json.Unmarshal(ev.Payload, &n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

type once struct {
	mu   sync.Mutex
	done map[string][]byte
}

func (o *once) Reserve(_ context.Context, key, _ string, _ time.Duration) ([]byte, bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if v, ok := o.done[key]; ok {
		return v, false, nil
	}
	o.done[key] = nil
	return nil, true, nil
}

func (o *once) Complete(_ context.Context, key string, result []byte, _ time.Duration) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.done[key] = result
	return nil
}

func (o *once) Release(_ context.Context, key, _ string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.done, key)
	return nil
}

type rig struct {
	p    *Processor
	pub  *published
	mem  members
	pref prefs
}

func newRig(t *testing.T, opts Options) *rig {
	t.Helper()
	r := &rig{pub: &published{}, mem: members{}, pref: prefs{}}
	r.p = New(r.mem, r.pref, NewMemoryCounter(), delivery.New(delivery.Options{Broker: r.pub}), &once{done: map[string][]byte{}}, opts)
	return r
}

func message(id, conv, sender, text string, recipients ...string) *webhook.Event {
	return &webhook.Event{
		Provider: "talkjs", ID: id, Type: "message.sent", Kind: webhook.KindMessage,
		Conversation: conv, Message: "m-" + id, Sender: sender, SenderName: strings.ToUpper(sender[:1]) + sender[1:],
		Text: text, Recipients: recipients,
	}
}

func users(ns []notification.Notification) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.User)
	}
	slices.Sort(out)
	return out
}

func TestProcessNotifiesRecipientsButNeverTheSender(t *testing.T) {
	cases := []struct {
		name    string
		ev      *webhook.Event
		members []string
		want    []string
	}{
		{"named recipients", message("1", "c1", "bob", "hi", "alice", "bob", "carol"), nil, []string{"alice", "carol"}},
		{"members of the conversation", message("2", "c1", "bob", "hi"), []string{"alice", "bob", "dave"}, []string{"alice", "dave"}},
		{"excluded participants", func() *webhook.Event {
			ev := message("3", "c1", "bob", "hi", "alice", "carol")
			ev.Exclude = []string{"carol"}
			return ev
		}(), nil, []string{"alice"}},
		{"duplicates once", message("4", "c1", "bob", "hi", "alice", "alice"), nil, []string{"alice"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, Options{})
			r.mem["c1"] = tc.members
			if _, err := r.p.Process(context.Background(), tc.ev); err != nil {
				t.Fatal(err)
			}
			if got := users(r.pub.notifications(t)); !slices.Equal(got, tc.want) {
				t.Fatalf("notified %v, want %v", got, tc.want)
			}
		})
	}
}

func TestProcessTwiceNotifiesOnce(t *testing.T) {
	r := newRig(t, Options{})
	ev := message("1", "c1", "bob", "hi", "alice")
	for range 2 {
		if _, err := r.p.Process(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(r.pub.events); n != 1 {
		t.Fatalf("%d events published, want 1", n)
	}
}

func TestNotificationContent(t *testing.T) {
	r := newRig(t, Options{})
	long := strings.Repeat("é", 200)
	if _, err := r.p.Process(context.Background(), message("1", "c1", "bob", long, "alice")); err != nil {
		t.Fatal(err)
	}
	n := r.pub.notifications(t)[0]
	if n.Title != "Bob" || n.Tag != "c1" || n.URL != "/chat/c1" || n.Type != "message.sent" {
		t.Fatalf("notification = %+v", n)
	}
	if got := []rune(n.Body); len(got) != MaxBodyRunes || got[len(got)-1] != '…' {
		t.Fatalf("body has %d runes, want %d ending in an ellipsis", len(got), MaxBodyRunes)
	}
	var data map[string]any
	_ = json.Unmarshal(n.Data, &data)
	if data["senderId"] != "bob" || data["conversationId"] != "c1" || data["provider"] != "talkjs" {
		t.Fatalf("data = %v", data)
	}
	if n.ID != NotificationID("talkjs", "message\x00m-1", "alice") {
		t.Fatalf("id %q is not the message's id for alice", n.ID)
	}
}

func TestRetractionNamesTheMessageNotification(t *testing.T) {
	r := newRig(t, Options{})
	ctx := context.Background()
	if _, err := r.p.Process(ctx, message("1", "c1", "bob", "hi", "alice")); err != nil {
		t.Fatal(err)
	}
	del := &webhook.Event{Provider: "talkjs", ID: "2", Type: "message.deleted", Kind: webhook.KindRetract,
		Conversation: "c1", Message: "m-1", Sender: "bob", Recipients: []string{"alice"}}
	if _, err := r.p.Process(ctx, del); err != nil {
		t.Fatal(err)
	}
	first, retract := r.pub.events[0], r.pub.events[1]
	if retract.Kind != notification.KindRetract || retract.ID != first.ID || retract.Tag != "c1" {
		t.Fatalf("retraction %+v does not name notification %s", retract, first.ID)
	}
}

func TestBurstCollapsesIntoOneTag(t *testing.T) {
	r := newRig(t, Options{ThrottleWindow: time.Minute})
	ctx := context.Background()
	for i, text := range []string{"one", "two", "three"} {
		if _, err := r.p.Process(ctx, message(string(rune('1'+i)), "c1", "bob", text, "alice")); err != nil {
			t.Fatal(err)
		}
	}
	ns := r.pub.notifications(t)
	if len(ns) != 3 {
		t.Fatalf("%d notifications", len(ns))
	}
	for _, n := range ns {
		if n.Tag != "c1" {
			t.Fatalf("tag %q: a burst must share one tag", n.Tag)
		}
	}
	if ns[0].Title != "Bob" || ns[2].Title != "3 new messages from Bob" || ns[2].Body != "three" {
		t.Fatalf("titles %q, %q / body %q", ns[0].Title, ns[2].Title, ns[2].Body)
	}
}

func TestPreferencesMuteAndQuietHours(t *testing.T) {
	noon := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	r := newRig(t, Options{Now: func() time.Time { return noon }})
	r.pref["alice"] = &Preferences{Muted: []string{"c1"}}
	r.pref["carol"] = &Preferences{QuietHours: &QuietHours{Start: "11:00", End: "13:00", TimeZone: "UTC"}}
	if _, err := r.p.Process(context.Background(), message("1", "c1", "bob", "hi", "alice", "carol")); err != nil {
		t.Fatal(err)
	}
	ns := r.pub.notifications(t)
	if len(ns) != 1 || ns[0].User != "carol" {
		t.Fatalf("notified %v, want carol only (alice muted c1)", users(ns))
	}
	if ns[0].Urgency != notification.UrgencyLow || !strings.Contains(string(ns[0].Data), `"quiet":true`) {
		t.Fatalf("quiet-hours notification = %+v", ns[0])
	}
}

func TestQuietHoursWrapMidnight(t *testing.T) {
	p := &Preferences{QuietHours: &QuietHours{Start: "22:00", End: "07:00", TimeZone: "Europe/Paris"}}
	cases := []struct {
		utc  string
		want bool
	}{{"2026-11-25T21:30:00Z", true}, {"2026-11-25T05:59:00Z", true}, {"2026-11-25T06:00:00Z", false}, {"2026-11-25T12:00:00Z", false}}
	for _, c := range cases {
		at, _ := time.Parse(time.RFC3339, c.utc)
		if got := p.Quiet(at); got != c.want {
			t.Errorf("Quiet(%s) = %v, want %v", c.utc, got, c.want)
		}
	}
}

func TestTogglesAndMasterSwitch(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, Options{Events: map[string]map[string]bool{"talkjs": {"message.sent": false}}})
	out, err := r.p.Process(ctx, message("1", "c1", "bob", "hi", "alice"))
	if err != nil || out.Skipped != "toggled_off" || len(r.pub.events) != 0 {
		t.Fatalf("toggled-off event: %+v %v, %d published", out, err, len(r.pub.events))
	}
	r = newRig(t, Options{Disabled: true})
	out, err = r.p.Process(ctx, message("1", "c1", "bob", "hi", "alice"))
	if err != nil || out.Skipped != "disabled" || len(r.pub.events) != 0 {
		t.Fatalf("master switch off: %+v %v", out, err)
	}
}

func TestTemplatesPerLocale(t *testing.T) {
	tpl, err := NewTemplates(map[string]map[string]TemplateText{
		"message":             {"fr": {Title: "{{.SenderName}} vous a écrit"}},
		"talkjs/message.sent": {"pt": {Title: "Nova mensagem de {{.SenderName}}", Body: "«{{.Text}}»"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, Options{Templates: tpl})
	r.pref["fr"] = &Preferences{Locale: "fr-CA"}
	r.pref["pt"] = &Preferences{Locale: "pt-BR"}
	if _, err := r.p.Process(context.Background(), message("1", "c1", "bob", "olá", "fr", "pt", "en")); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, n := range r.pub.notifications(t) {
		got[n.User] = n.Title + " | " + n.Body
	}
	want := map[string]string{"fr": "Bob vous a écrit | olá", "pt": "Nova mensagem de Bob | «olá»", "en": "Bob | olá"}
	for u, w := range want {
		if got[u] != w {
			t.Errorf("%s: %q, want %q", u, got[u], w)
		}
	}
}

func TestBadTemplateIsAnError(t *testing.T) {
	if _, err := NewTemplates(map[string]map[string]TemplateText{"message": {"default": {Title: "{{.Nope"}}}); err == nil {
		t.Fatal("unparsable template accepted")
	}
}

func TestTruncate(t *testing.T) {
	cases := []struct {
		in   string
		max  int
		want string
	}{{"short", 10, "short"}, {"exactly ten", 11, "exactly ten"}, {"hello world", 6, "hello…"}, {"日本語のテキスト", 4, "日本語…"}}
	for _, c := range cases {
		if got := Truncate(c.in, c.max); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

func TestPreferencesValidate(t *testing.T) {
	bad := []Preferences{
		{QuietHours: &QuietHours{Start: "25:00", End: "07:00"}},
		{QuietHours: &QuietHours{Start: "22:00", End: "07:00", TimeZone: "Mars/Olympus"}},
		{Channels: map[string]bool{"pigeon": true}},
		{Muted: []string{""}},
	}
	for i, p := range bad {
		if err := p.Validate(); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
	good := Preferences{Muted: []string{"c1"}, QuietHours: &QuietHours{Start: "22:00", End: "07:00", TimeZone: "Europe/Paris"}, Channels: map[string]bool{"webpush": false}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBadRecipientIDsAreSkippedAndCounted(t *testing.T) {
	r := newRig(t, Options{})
	ev := message("1", "c1", "bob", "hi", "alice", "eve\nadmin", "nul\x00", strings.Repeat("x", 257), "", "\xff", "carol")
	out, err := r.p.Process(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if got := users(r.pub.notifications(t)); !slices.Equal(got, []string{"alice", "carol"}) {
		t.Fatalf("notified %v, want alice and carol", got)
	}
	if out.BadRecipients != 5 {
		t.Fatalf("BadRecipients = %d, want 5", out.BadRecipients)
	}
	// Members from the membership store are checked the same way.
	r = newRig(t, Options{})
	r.mem["c1"] = []string{"dave", "tab\tid"}
	out, err = r.p.Process(context.Background(), message("2", "c1", "bob", "hi"))
	if err != nil || out.BadRecipients != 1 || !slices.Equal(users(r.pub.notifications(t)), []string{"dave"}) {
		t.Fatalf("members: %+v %v, notified %v", out, err, users(r.pub.notifications(t)))
	}
}

func TestWebhookURLsThatAreNotWebOrRelativeAreDropped(t *testing.T) {
	r := newRig(t, Options{})
	ev := &webhook.Event{Provider: "herald", ID: "n1", Type: "notification.send", Kind: webhook.KindNotification,
		Recipients: []string{"alice", "bob"}, Title: "t", URL: "javascript:alert(1)", Icon: "java\tscript:alert(1)"}
	out, err := r.p.Process(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	ns := r.pub.notifications(t)
	if len(ns) != 2 {
		t.Fatalf("%d notifications, want 2 (delivered without the url)", len(ns))
	}
	for _, n := range ns {
		if n.URL != "" || n.Icon != "" {
			t.Fatalf("notification kept url %q icon %q", n.URL, n.Icon)
		}
	}
	if out.Dropped["url"] != 2 || out.Dropped["icon"] != 2 {
		t.Fatalf("Dropped = %v, want url and icon twice", out.Dropped)
	}
}

func TestTemplateRenderingABadURLGivesNoURL(t *testing.T) {
	tpl, err := NewTemplates(map[string]map[string]TemplateText{"message": {"default": {URL: "{{.Text}}"}}})
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, Options{Templates: tpl})
	ev := message("1", "c1", "bob", "javascript:alert(1)", "alice")
	ev.URL = "/chat/c1" // not the fallback when the template rendered something bad
	out, err := r.p.Process(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if n := r.pub.notifications(t)[0]; n.URL != "" {
		t.Fatalf("url = %q, want none", n.URL)
	}
	if out.Dropped["template_url"] != 1 {
		t.Fatalf("Dropped = %v", out.Dropped)
	}
}

func TestDefaultURLEscapesTheConversation(t *testing.T) {
	r := newRig(t, Options{})
	if _, err := r.p.Process(context.Background(), message("1", `team chat/#1\x`, "bob", "hi", "alice")); err != nil {
		t.Fatal(err)
	}
	n := r.pub.notifications(t)[0]
	if n.URL != `/chat/team%20chat%2F%231%5Cx` || notification.ValidURL(n.URL) != nil {
		t.Fatalf("url = %q", n.URL)
	}
}

// failingComplete is a once whose Complete always fails.
type failingComplete struct{ *once }

func (failingComplete) Complete(context.Context, string, []byte, time.Duration) error {
	return errors.New("store gone")
}

// TestFailedCompleteIsReportedNotSwallowed: an event published whose
// record cannot be completed is not a failure to retry, but the outcome
// says so, for the worker's log and the metric.
func TestFailedCompleteIsReportedNotSwallowed(t *testing.T) {
	r := newRig(t, Options{})
	r.p = New(r.mem, r.pref, NewMemoryCounter(), delivery.New(delivery.Options{Broker: r.pub}), failingComplete{&once{done: map[string][]byte{}}}, Options{})
	out, err := r.p.Process(context.Background(), message("1", "c1", "bob", "hi", "alice"))
	if err != nil || out.Notified != 1 {
		t.Fatalf("outcome %+v, err %v; want one notified and no error", out, err)
	}
	if out.Unrecorded == nil {
		t.Fatal("the failed Complete is not in the outcome")
	}
}

// reads records ReadTag calls.
type reads struct {
	mu    sync.Mutex
	calls []string // user|tag|by
	fail  error
}

func (r *reads) ReadTag(_ context.Context, user, tag, by string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, user+"|"+tag+"|"+by)
	return r.fail
}

// TestReadEventsMarkEachReadersConversation: a provider's read event
// marks each valid reader's notifications of the conversation read, and
// nobody else's; it publishes nothing itself, obeys the toggles, and a
// failed mark is an error to retry.
func TestReadEventsMarkEachReadersConversation(t *testing.T) {
	rd := &reads{}
	r := newRig(t, Options{Reads: rd, Events: map[string]map[string]bool{"stream": {"message.read": false}}})
	ev := &webhook.Event{Provider: "talkjs", ID: "r1", Type: "message.read", Kind: webhook.KindRead,
		Conversation: "c1", Message: "m1", Recipients: []string{"alice", "bad id\x00", "bob"}}
	out, err := r.p.Process(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"alice|c1|provider:talkjs", "bob|c1|provider:talkjs"}; !slices.Equal(rd.calls, want) {
		t.Errorf("marks %q, want %q", rd.calls, want)
	}
	if out.Read != 2 || out.BadRecipients != 1 || out.Skipped != "" || len(r.pub.events) != 0 {
		t.Errorf("outcome %+v, %d events published", out, len(r.pub.events))
	}

	rd.calls = nil
	off := *ev
	off.Provider = "stream"
	if out, _ := r.p.Process(context.Background(), &off); out.Skipped != "toggled_off" || len(rd.calls) != 0 {
		t.Errorf("toggled off: %+v, marks %q", out, rd.calls)
	}
	rd.fail = errors.New("store down")
	if _, err := r.p.Process(context.Background(), ev); err == nil {
		t.Error("a failed mark was not reported")
	}
	plain := newRig(t, Options{})
	if out, err := plain.p.Process(context.Background(), ev); err != nil || out.Skipped != "ignored" {
		t.Errorf("without a reader: %+v %v", out, err)
	}
}
