package notification_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/pkg/notification"
)

// history builds a history from a script: "n:<id>:<tag>" a notification,
// "read|seen|dismissed:ids=a,b", "…:tag=t", "…:up=<seq>" a mark,
// "retract:<id>" a retraction.
func history(t *testing.T, steps ...string) []*notification.Event {
	t.Helper()
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	var out []*notification.Event
	for i, s := range steps {
		var ev *notification.Event
		var err error
		var b string
		parts := split(s)
		kind, a := parts[0], parts[1]
		if len(parts) > 2 {
			b = parts[2]
		}
		switch kind {
		case "n":
			ev, err = notification.NewEvent(&notification.Notification{ID: a, User: "u", Title: a, Tag: b, CreatedAt: at})
		case "retract":
			ev, err = notification.NewRetractEvent("u", a, "", at)
		default:
			m := &notification.Mark{State: kind, At: at.Add(time.Duration(i) * time.Second)}
			switch a {
			case "ids":
				m.IDs = splitComma(b)
			case "tag":
				m.Tag = b
			case "up":
				m.UpTo = "ep-" + b
			}
			ev, err = notification.NewMarkEvent("u", m)
		}
		if err != nil {
			t.Fatal(err)
		}
		ev.Cursor = notification.Cursor{Epoch: "ep", Seq: uint64(i + 1)}
		out = append(out, ev)
	}
	return out
}

func split(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == '=' })
}

func splitComma(s string) []string { return strings.Split(s, ",") }

func TestFoldCountsUnread(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []string
		total int
		tags  map[string]int
	}{
		{"nothing read", []string{"n:a:c1", "n:b:c1", "n:c:"}, 3, map[string]int{"c1": 2}},
		{"ids", []string{"n:a:c1", "n:b:c1", "read:ids=a,zz"}, 1, map[string]int{"c1": 1}},
		{"tag covers only earlier ones", []string{"n:a:c1", "n:b:c2", "read:tag=c1", "n:c:c1"}, 2, map[string]int{"c1": 1, "c2": 1}},
		{"up to a cursor", []string{"n:a:c1", "n:b:c2", "n:c:c2", "read:up=2"}, 1, map[string]int{"c2": 1}},
		{"seen is still unread", []string{"n:a:c1", "seen:ids=a"}, 1, map[string]int{"c1": 1}},
		{"dismissed is not", []string{"n:a:c1", "dismissed:ids=a"}, 0, map[string]int{}},
		{"retracted is not", []string{"n:a:c1", "n:b:", "retract:a"}, 1, map[string]int{}},
		{"read twice counts once", []string{"n:a:c1", "n:b:c1", "read:ids=a", "read:ids=a"}, 1, map[string]int{"c1": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := notification.Fold(history(t, tc.steps...)).Unread()
			if u.Total != tc.total || fmt.Sprint(u.Tags) != fmt.Sprint(tc.tags) {
				t.Fatalf("unread %d %v, want %d %v", u.Total, u.Tags, tc.total, tc.tags)
			}
		})
	}
}

func TestFoldKeepsTheFirstTimeOfEachState(t *testing.T) {
	h := history(t, "n:a:c1", "seen:ids=a", "read:ids=a", "read:tag=c1")
	rs := notification.Fold(h)
	m := rs.Marks("a")
	if m.Seen != h[1].Created || m.Read != h[2].Created || !m.Dismissed.IsZero() {
		t.Fatalf("marks %+v", m)
	}
	if ch := rs.Changes(&notification.Mark{State: "read", Tag: "c1"}); len(ch) != 0 {
		t.Fatalf("a read of what is read changes %v", ch)
	}
	if ch := rs.Changes(&notification.Mark{State: "dismissed", IDs: []string{"a"}}); len(ch) != 1 {
		t.Fatalf("a dismissal of a read one changes %v", ch)
	}
	// A read implies seen.
	rs = notification.Fold(history(t, "n:a:", "read:ids=a"))
	if rs.Marks("a").Seen.IsZero() {
		t.Fatal("read without seen")
	}
	// An up_to of another history selects nothing.
	if got := rs.Select(&notification.Mark{State: "read", UpTo: "other-9"}); len(got) != 0 {
		t.Fatalf("foreign cursor selected %v", got)
	}
}

// TestDeliveredMarksNameTheDevicesShown: a delivered mark records which
// devices a notification was pushed to, without reading or seeing it.
func TestDeliveredMarksNameTheDevicesShown(t *testing.T) {
	evs := history(t, "n:a:c1", "n:b:c1", "n:c:")
	at := time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)
	for i, d := range []struct {
		id      string
		devices []string
	}{{"a", []string{"d1", "d2"}}, {"b", []string{"d2", "d3"}}, {"a", []string{"d1"}}} {
		ev, err := notification.NewMarkEvent("u", &notification.Mark{State: notification.StateDelivered, IDs: []string{d.id}, At: at, Devices: d.devices})
		if err != nil {
			t.Fatal(err)
		}
		ev.Cursor = notification.Cursor{Epoch: "ep", Seq: uint64(10 + i)}
		evs = append(evs, ev)
	}
	rs := notification.Fold(evs)
	if got := rs.ShownOn([]string{"a", "b", "c"}); fmt.Sprint(got) != "[d1 d2 d3]" {
		t.Errorf("shown on %v", got)
	}
	if got := rs.ShownOn([]string{"b"}); fmt.Sprint(got) != "[d2 d3]" {
		t.Errorf("b shown on %v", got)
	}
	if got := rs.ShownOn([]string{"c", "zz"}); len(got) != 0 {
		t.Errorf("c shown on %v", got)
	}
	if m := rs.Marks("a"); !m.Delivered.Equal(at) || !m.Seen.IsZero() || !m.Unread() {
		t.Errorf("marks of a %+v", m)
	}
	if u := rs.Unread(); u.Total != 3 {
		t.Errorf("unread %+v", u)
	}

	// A push recorded before its notification reached the history.
	early, err := notification.NewMarkEvent("u", &notification.Mark{State: notification.StateDelivered, IDs: []string{"late"}, At: at, Devices: []string{"d9"}})
	if err != nil {
		t.Fatal(err)
	}
	late := history(t, "n:late:")[0]
	early.Cursor, late.Cursor = notification.Cursor{Epoch: "ep", Seq: 20}, notification.Cursor{Epoch: "ep", Seq: 21}
	rs = notification.Fold(append(evs, early, late))
	if got := rs.ShownOn([]string{"late"}); fmt.Sprint(got) != "[d9]" || rs.Marks("late").Delivered.IsZero() {
		t.Errorf("late notification shown on %v, marks %+v", got, rs.Marks("late"))
	}
}
