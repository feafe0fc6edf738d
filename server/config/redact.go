package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// redacted stands in for a secret that is set.
const redacted = "REDACTED"

// LogValue makes a Config safe to log with slog: secrets show only as
// REDACTED, credentials in URLs are removed, and empty settings are left
// out.
func (c Config) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(settings))
	for i := range settings {
		s := &settings[i]
		switch p := s.field(&c).(type) {
		case *bool:
			attrs = append(attrs, slog.Bool(s.key, *p))
		case *int:
			attrs = append(attrs, slog.Int(s.key, *p))
		case *int64:
			attrs = append(attrs, slog.Int64(s.key, *p))
		case *time.Duration:
			// As text ("5s"), not nanoseconds, in JSON logs too.
			attrs = append(attrs, slog.String(s.key, formatDuration(*p)))
		default:
			if v := s.shown(&c); v != "" {
				attrs = append(attrs, slog.String(s.key, v))
			}
		}
	}
	return slog.GroupValue(attrs...)
}

// String formats c as key=value pairs, redacted like LogValue, so that
// printing a Config by mistake leaks nothing.
func (c Config) String() string {
	var b strings.Builder
	for i := range settings {
		s := &settings[i]
		v := s.shown(&c)
		if v == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", s.key, v)
	}
	return b.String()
}

// GoString keeps %#v from printing secrets too.
func (c Config) GoString() string { return "config.Config{" + c.String() + "}" }

// shown is the setting's value of c as it may appear in logs.
func (s *setting) shown(c *Config) string {
	v := s.get(c)
	if v == "" {
		return ""
	}
	switch s.show {
	case secret:
		return redacted
	case secretURL:
		return redactURL(v)
	default:
		return v
	}
}

// redactURL removes what may be a credential from a URL: the user info and
// the query's values. What cannot be parsed is hidden whole.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redacted
	}
	if u.User != nil {
		u.User = url.User(redacted)
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{redacted}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}
