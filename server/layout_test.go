package server

import (
	"go/build"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/heraldhq/herald/"

// TestImportRules keeps the dependency rules of docs/architecture.md: the
// building blocks under pkg/ know nothing of hub or server, the hub sees
// only the model, the broker seam and the transport contract, transports
// see only the model and each other, and server/ writes to no socket.
func TestImportRules(t *testing.T) {
	imports := map[string][]string{} // package (module-relative) → its non-test imports
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "testdata") {
			return filepath.SkipDir
		}
		p, err := build.ImportDir(path, 0)
		if err != nil {
			return nil // no Go files here
		}
		rel, _ := filepath.Rel(root, path)
		imports[filepath.ToSlash(rel)] = p.Imports
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(imports) < 20 {
		t.Fatalf("found only %d packages under %s", len(imports), root)
	}
	within := func(pkg string, prefixes ...string) bool {
		for _, p := range prefixes {
			if pkg == p || strings.HasPrefix(pkg, p+"/") {
				return true
			}
		}
		return false
	}
	for pkg, deps := range imports {
		for _, dep := range deps {
			own, ok := strings.CutPrefix(dep, module)
			switch {
			case within(pkg, "pkg") && ok && within(own, "hub", "server", "web"):
				t.Errorf("%s imports %s: nothing under pkg/ may", pkg, own)
			case pkg == "hub" && ok && !within(own, "pkg/notification", "pkg/broker") && own != "pkg/transport":
				t.Errorf("hub imports %s: the hub sees the model, the broker seam and the transport contract only", own)
			case within(pkg, "pkg/transport") && ok && !within(own, "pkg/notification", "pkg/transport"):
				t.Errorf("%s imports %s: transports see the model and each other only", pkg, own)
			case pkg == "pkg/notification" && ok:
				t.Errorf("pkg/notification imports %s: the model imports nothing of Herald's", own)
			case pkg == "server" && (dep == "golang.org/x/sys/unix" || dep == "github.com/coder/websocket"):
				t.Errorf("server imports %s: socket-level code belongs in pkg/transport", dep)
			}
		}
	}
}
