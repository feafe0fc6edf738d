package server

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldhq/herald/hub"
	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/queue"
	"github.com/heraldhq/herald/pkg/webhook"
)

// TestErrorForMapsEachConditionToOneCode: the errors of the packages
// below reach the client as their catalog entry, however they are wrapped.
func TestErrorForMapsEachConditionToOneCode(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("talkjs: %w", webhook.ErrStale), 401, "stale_timestamp"},
		{webhook.Unauthorized("talkjs: signature mismatch"), 401, "invalid_signature"},
		{webhook.Missing("data.conversation.id"), 400, "invalid_payload"},
		{fmt.Errorf("attach: %w", hub.ErrClosing), 503, "shutting_down"},
		{fmt.Errorf("queuelog enqueue: %w: disk full", queue.ErrUnavailable), 503, "unavailable"},
		{broker.ErrReset, 400, "invalid_cursor"},
		{&http.MaxBytesError{Limit: 10}, 413, "body_too_large"},
		{invalidField("limit", "must be 1-500"), 400, "invalid_field"},
		{errors.New("something unforeseen"), 500, "internal"},
	}
	for _, tc := range tests {
		he := errorFor(tc.err)
		if he.Status != tc.status || he.Code != tc.code {
			t.Errorf("%v: %d %s, want %d %s", tc.err, he.Status, he.Code, tc.status, tc.code)
		}
	}
	if he := errorFor(webhook.Missing("data.id")); he.Message != "data.id: required" {
		t.Errorf("field error message %q, want the field and the reason", he.Message)
	}
}

// TestShuttingDownIsOneCodeOnBothTransports: a node that has begun
// shutting down refuses a new WebSocket and a new SSE stream alike.
func TestShuttingDownIsOneCodeOnBothTransports(t *testing.T) {
	n := startNode(t, nil)
	if err := n.srv.Hub().Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/ws", "/v1/sse"} {
		status, body := n.do(http.MethodGet, path, mintToken(t, "alice"), nil)
		if code, _ := apiError(t, body); status != http.StatusServiceUnavailable || code != "shutting_down" {
			t.Errorf("GET %s while shutting down: %d %s, want 503 shutting_down", path, status, body)
		}
	}
}

// TestErrorCodesAreAllInTheCatalog: no file of the server invents an
// error code; each is declared once in errors.go with its status, and
// the README's API section lists every one with that status.
func TestErrorCodesAreAllInTheCatalog(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]int{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(node ast.Node) bool {
			lit, ok := node.(*ast.CompositeLit)
			if !ok {
				return true
			}
			id, ok := lit.Type.(*ast.Ident)
			if !ok || (id.Name != "apiCode" && id.Name != "httpError") {
				return true
			}
			if f != "errors.go" {
				t.Errorf("%s: %s literal outside the catalog", fset.Position(lit.Pos()), id.Name)
				return true
			}
			if id.Name != "apiCode" {
				return true
			}
			status := lit.Elts[0].(*ast.SelectorExpr).Sel.Name
			code, _ := strconv.Unquote(lit.Elts[1].(*ast.BasicLit).Value)
			if _, dup := statuses[code]; dup {
				t.Errorf("code %s declared twice", code)
			}
			statuses[code] = httpStatus(t, status)
			return true
		})
	}
	if len(statuses) < 20 {
		t.Fatalf("found %d codes in the catalog; the test no longer reads it", len(statuses))
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| (\\d{3}) \\|")
	documented := map[string]int{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]], _ = strconv.Atoi(m[2])
	}
	for code, status := range statuses {
		if documented[code] != status {
			t.Errorf("README lists %s with status %d, the catalog with %d", code, documented[code], status)
		}
	}
	for code := range documented {
		if _, ok := statuses[code]; !ok {
			t.Errorf("README lists %s, which the catalog does not have", code)
		}
	}
}

// httpStatus is the value of net/http's Status… constant of that name.
func httpStatus(t *testing.T, name string) int {
	for code := 100; code < 600; code++ {
		text := http.StatusText(code)
		if text == "" {
			continue
		}
		if "Status"+strings.NewReplacer(" ", "", "-", "", "'", "").Replace(text) == name {
			return code
		}
	}
	known := map[string]int{"StatusRequestEntityTooLarge": 413, "StatusUnprocessableEntity": 422}
	if c, ok := known[name]; ok {
		return c
	}
	t.Fatalf("unknown status constant %s", name)
	return 0
}
