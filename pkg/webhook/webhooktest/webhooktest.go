// Package webhooktest holds what the provider adapters' tests share:
// reading fixtures from testdata/, editing a fixture's JSON at a path, and
// seeding fuzz targets with every fixture.
package webhooktest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
