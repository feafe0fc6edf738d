package notification

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidURLAcceptsWebAndRelativeURLs(t *testing.T) {
	for _, s := range []string{
		"", "https://example.com", "https://example.com/chat/c1?x=1#m", "http://example.com:8080/a",
		"HTTPS://EXAMPLE.COM/", "/chat/c1", "chat/c1", "?x=1", "#m", "./a/b", "../a", "/a:b",
		"/chat/caf%C3%A9", "/chat/café", "https://[::1]:8443/x", "a/b:c",
	} {
		if err := ValidURL(s); err != nil {
			t.Errorf("ValidURL(%q) = %v, want nil", s, err)
		}
	}
}

func TestValidURLRefusesOtherSchemesAndTricks(t *testing.T) {
	for _, s := range []string{
		"javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)", "javascript:alert(1) ",
		"java\tscript:alert(1)", "java\nscript:alert(1)", "java\rscript:alert(1)", "\x00javascript:x",
		"data:text/html,<script>alert(1)</script>", "vbscript:msgbox", "file:///etc/passwd",
		"//evil.example", "//evil.example/x", "/\\evil.example", "\\\\evil.example", "https:\\\\evil.example",
		"https:evil.example", "https:/evil.example", "https://", "https://:80/x", "http:///x",
		"https://bank.example@evil.example", "https://user:pw@evil.example", "/a b", "/a\u0085b",
		"/%zz", "ｊavascript:alert(1)", "javascript%3Aalert(1):x", "\xff/x", "/x\x7f",
		"/" + strings.Repeat("a", MaxURLLen),
	} {
		if err := ValidURL(s); err == nil {
			t.Errorf("ValidURL(%q) = nil, want an error", s)
		}
	}
}

func TestValidUserID(t *testing.T) {
	for _, u := range []string{"alice", "user@example.com", "ünï", strings.Repeat("a", MaxUserIDLen)} {
		if err := ValidUserID(u); err != nil {
			t.Errorf("ValidUserID(%q) = %v", u, err)
		}
	}
	for _, u := range []string{"", "a\nb", "a\x00", "a\x7f", "a\u0085", "\xff", strings.Repeat("a", MaxUserIDLen+1)} {
		if err := ValidUserID(u); err == nil {
			t.Errorf("ValidUserID(%q) = nil, want an error", u)
		}
	}
}

// FuzzValidURL checks that whatever ValidURL accepts a browser resolves,
// against an https page, to an http(s) URL: the page's own origin for a
// relative URL, a named host for an absolute one.
func FuzzValidURL(f *testing.F) {
	for _, s := range []string{"https://example.com/x", "/chat/c1", "chat/c1", "?x", "//evil.example",
		"/\\evil.example", "java\tscript:alert(1)", "javascript:alert(1)", "https:evil.example", "#a:b"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://app.example/inbox/")
	f.Fuzz(func(t *testing.T, s string) {
		if ValidURL(s) != nil {
			return
		}
		if s == "" {
			return
		}
		if !utf8.ValidString(s) || len(s) > MaxURLLen {
			t.Fatalf("accepted %q", s)
		}
		for _, r := range s {
			if r <= 0x20 || r == 0x7f || r == '\\' {
				t.Fatalf("accepted %q with a control, space or backslash", s)
			}
		}
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("accepted %q, which does not parse: %v", s, err)
		}
		abs := base.ResolveReference(u)
		if abs.Scheme != "https" && abs.Scheme != "http" {
			t.Fatalf("accepted %q, which resolves to scheme %q", s, abs.Scheme)
		}
		if abs.Host == "" || abs.User != nil {
			t.Fatalf("accepted %q, which resolves to %q", s, abs)
		}
		if u.Scheme == "" && abs.Host != base.Host {
			t.Fatalf("relative %q leaves the page's origin: %q", s, abs)
		}
	})
}

func TestDistinctUsersKeepsFirstOccurrenceInOrder(t *testing.T) {
	tests := []struct {
		users, skip, want []string
	}{
		{nil, nil, []string{}},
		{[]string{"a", "b", "a", "c", "b"}, nil, []string{"a", "b", "c"}},
		{[]string{"bob", "alice", "carol", "alice"}, []string{"bob", "dave"}, []string{"alice", "carol"}},
		{[]string{"a"}, []string{"a"}, []string{}},
	}
	for _, tc := range tests {
		if got := DistinctUsers(tc.users, tc.skip); !slices.Equal(got, tc.want) {
			t.Errorf("DistinctUsers(%q, %q) = %q, want %q", tc.users, tc.skip, got, tc.want)
		}
	}
}
