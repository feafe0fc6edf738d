package main

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func TestVAPIDPrintsAFreshUsablePair(t *testing.T) {
	var a, b bytes.Buffer
	if err := runVAPID(nil, &a); err != nil {
		t.Fatal(err)
	}
	if err := runVAPID(nil, &b); err != nil {
		t.Fatal(err)
	}
	if a.String() == b.String() {
		t.Fatal("two runs printed the same pair")
	}
	lines := strings.Split(strings.TrimSpace(a.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "HERALD_VAPID_PUBLIC_KEY=") || !strings.HasPrefix(lines[1], "HERALD_VAPID_PRIVATE_KEY=") {
		t.Fatalf("output %q", a.String())
	}
	pub, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(lines[0], "HERALD_VAPID_PUBLIC_KEY="))
	if err != nil || len(pub) != 65 || pub[0] != 4 {
		t.Fatalf("public key is not an uncompressed P-256 point: %d bytes, %v", len(pub), err)
	}
}
