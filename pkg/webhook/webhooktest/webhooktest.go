// Package webhooktest holds what the provider adapters' tests share:
// reading fixtures from testdata/, editing a fixture's JSON at a path, and
// seeding fuzz targets with every fixture.
package webhooktest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldhq/herald/pkg/webhook"
)

// Fixture reads testdata/name.
func Fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Edit returns body with the value at the dotted path replaced by v, or
// removed when v is nil; a numeric segment indexes an array.
func Edit(t testing.TB, body []byte, path string, v any) []byte {
	t.Helper()
	var root any
	if err := json.Unmarshal(body, &root); err != nil {
		t.Fatal(err)
	}
	keys := strings.Split(path, ".")
	cur := root
	for _, k := range keys[:len(keys)-1] {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(c) {
				t.Fatalf("%s: no element %q", path, k)
			}
			cur = c[i]
		default:
			t.Fatalf("%s: no object at %q", path, k)
		}
	}
	m, ok := cur.(map[string]any)
	if !ok {
		t.Fatalf("%s: no object", path)
	}
	if v == nil {
		delete(m, keys[len(keys)-1])
	} else {
		m[keys[len(keys)-1]] = v
	}
	out, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Seeds returns every testdata/*.json fixture, for f.Add.
func Seeds(f *testing.F) [][]byte {
	f.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	out := make([][]byte, 0, len(names))
	for _, n := range names {
		out = append(out, Fixture(f, filepath.Base(n)))
	}
	return out
}

// CheckParsed asserts what every Parse result keeps, whatever the body: an
// error is a *webhook.FieldError; an event names provider and passes
// webhook.CheckEvent. It reports whether there is an event to check further.
func CheckParsed(t testing.TB, provider string, ev webhook.Event, err error) bool {
	t.Helper()
	if err != nil {
		var fe *webhook.FieldError
		if !errors.As(err, &fe) {
			t.Fatalf("error %v is not a FieldError", err)
		}
		return false
	}
	if ev.Provider != provider {
		t.Fatalf("provider %q, want %q", ev.Provider, provider)
	}
	if err := webhook.CheckEvent(ev); err != nil {
		t.Fatal(err)
	}
	return true
}

// EventTypesAreKnown asserts that every event type p acts on is among the
// types it documents.
func EventTypesAreKnown(t testing.TB, p webhook.Provider) {
	t.Helper()
	known := map[string]bool{}
	for _, k := range p.KnownEventTypes() {
		known[k] = true
	}
	for _, typ := range p.EventTypes() {
		if !known[typ] {
			t.Errorf("%s acted on but not known", typ)
		}
	}
}
