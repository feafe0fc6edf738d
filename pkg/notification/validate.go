package notification

import (
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Limits every path into a notification shares (API, webhooks, templates).
const (
	MaxUserIDLen = 256
	MaxURLLen    = 2048
)

// Why a user id or URL is refused; the messages name no field, callers do.
var (
	ErrUserID        = errors.New("user ids must be 1-256 bytes of UTF-8")
	ErrUserIDControl = errors.New("user ids must not contain control characters")
	ErrURL           = errors.New("must be an https:, http: or relative URL")
	ErrURLLong       = errors.New("too long")
)

// ValidUserID reports whether u can name a user: 1 to MaxUserIDLen bytes
// of UTF-8 without control characters (a user id ends up in store keys,
// log lines and the token's sub, where a newline or NUL would forge
// structure).
func ValidUserID(u string) error {
	if u == "" || len(u) > MaxUserIDLen || !utf8.ValidString(u) {
		return ErrUserID
	}
	for _, r := range u {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ErrUserIDControl
		}
	}
	return nil
}

// ValidURL reports whether s may be a notification's click or icon URL: an
// absolute https: or http: URL with a host, or a relative reference that is
// a path or query ("/chat/c1", "chat/c1", "?x", "#x"). The empty string is
// valid (no URL). Everything a browser could resolve to another scheme or
// another origin unexpectedly is refused:
//
//   - any other scheme (javascript:, data:, vbscript:, …);
//   - a scheme-relative "//host" (refused, not read as https: the sender
//     meant either a path or a host, and guessing the host is the risk);
//   - ASCII control characters and spaces anywhere (browsers strip them at
//     the ends and drop tabs and newlines inside, so "java\tscript:" and
//     " javascript:" would run), backslashes (read as "/" in http URLs,
//     so "/\evil.example" is "//evil.example"), and C1 controls;
//   - userinfo in an absolute URL ("https://bank.example@evil.example");
//   - invalid UTF-8, malformed percent-escapes, more than MaxURLLen bytes.
func ValidURL(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > MaxURLLen {
		return ErrURLLong
	}
	if !utf8.ValidString(s) {
		return ErrURL
	}
	for _, r := range s {
		if r <= 0x20 || r == 0x7f || r == '\\' || (r >= 0x80 && r < 0xa0) {
			return ErrURL
		}
	}
	// The first of ":/?#" decides: a colon before any of the others means
	// the string starts with a scheme.
	if i := strings.IndexAny(s, ":/?#"); i >= 0 && s[i] == ':' {
		scheme := strings.ToLower(s[:i])
		if scheme != "https" && scheme != "http" {
			return ErrURL
		}
		if !strings.HasPrefix(s[i+1:], "//") {
			return ErrURL
		}
		u, err := url.Parse(s)
		if err != nil || u.Hostname() == "" || u.User != nil || u.Opaque != "" {
			return ErrURL
		}
		return nil
	}
	if strings.HasPrefix(s, "//") {
		return ErrURL
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ErrURL
	}
	return nil
}

// DistinctUsers is users in their order, each once, without those in
// skip: the recipients of one send, however often the caller named them.
func DistinctUsers(users, skip []string) []string {
	seen := make(map[string]struct{}, len(users)+len(skip))
	for _, u := range skip {
		seen[u] = struct{}{}
	}
	out := make([]string, 0, len(users))
	for _, u := range users {
		if _, dup := seen[u]; dup {
			continue
		}
		seen[u] = struct{}{}
		out = append(out, u)
	}
	return out
}
