package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// withSecrets returns a config whose every secret holds a marker that must
// never be printed, and whose URLs carry credentials.
func withSecrets() (*Config, []string) {
	c := Default()
	var markers []string
	for i := range settings {
		s := &settings[i]
		switch s.show {
		case secret:
			m := "marker-" + s.key
			markers = append(markers, m)
			_ = s.set(c, m)
		case secretURL:
			user, pass, tok := "user-"+s.key, "pass-"+s.key, "tok-"+s.key
			markers = append(markers, user, pass, tok)
			_ = s.set(c, "https://"+user+":"+pass+"@host.example:6379/path?token="+tok+"#frag-"+tok)
		}
	}
	return c, markers
}

func TestSecretsAreNeverPrinted(t *testing.T) {
	c, markers := withSecrets()
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("config", "config", c)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("config", "config", *c)
	outputs := map[string]string{
		"slog text":     text.String(),
		"slog JSON":     js.String(),
		"String":        c.String(),
		"%v pointer":    fmt.Sprintf("%v", c),
		"%v value":      fmt.Sprintf("%v", *c),
		"%+v value":     fmt.Sprintf("%+v", *c),
		"%#v pointer":   fmt.Sprintf("%#v", c),
		"%#v value":     fmt.Sprintf("%#v", *c),
		"%s value":      fmt.Sprintf("%s", *c),
		"LogValue only": c.LogValue().String(),
	}
	for name, out := range outputs {
		for _, m := range markers {
			if strings.Contains(out, m) {
				t.Errorf("%s prints %q:\n%s", name, m, out)
			}
		}
		for _, want := range []string{"addr", ":8080", "jwt_secret", redacted, "host.example"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s lacks %q:\n%s", name, want, out)
			}
		}
	}
}

func TestLogValueTypesAndEmptySettings(t *testing.T) {
	c := Default()
	attrs := map[string]slog.Value{}
	for _, a := range c.LogValue().Group() {
		attrs[a.Key] = a.Value
	}
	if v := attrs["ack_timeout"]; v.Kind() != slog.KindString || v.String() != "5s" {
		t.Errorf("ack_timeout logs as %v (%v), want the string 5s", v, v.Kind())
	}
	if v := attrs["history_max_count"]; v.Kind() != slog.KindInt64 || v.Int64() != 1000 {
		t.Errorf("history_max_count logs as %v", v)
	}
	if v := attrs["metrics"]; v.Kind() != slog.KindBool || !v.Bool() {
		t.Errorf("metrics logs as %v", v)
	}
	for _, k := range []string{"jwt_secret", "redis_url", "allowed_origins"} {
		if _, ok := attrs[k]; ok {
			t.Errorf("unset %s is logged", k)
		}
	}
}

func TestRedactURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"redis://redis:6379/0", "redis://redis:6379/0"},
		{"redis://:pw@redis:6379", "redis://" + redacted + "@redis:6379"},
		{"redis://user:pw@redis:6379", "redis://" + redacted + "@redis:6379"},
		{"https://tok@keys.example/jwks", "https://" + redacted + "@keys.example/jwks"},
		{"https://keys.example/jwks?key=abc&v=1", "https://keys.example/jwks?key=" + redacted + "&v=" + redacted},
		{"https://keys.example/jwks#abc", "https://keys.example/jwks"},
		{"redis://[::1", redacted},
	}
	for _, tc := range cases {
		if got := redactURL(tc.in); got != tc.want {
			t.Errorf("redactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestSecretSettings pins which settings are hidden, and that each is a
// string: string values never fail to parse, so load errors can repeat a
// rejected value without leaking a secret.
func TestSecretSettings(t *testing.T) {
	want := map[string]exposure{
		"jwt_secret": secret, "api_key": secret, "talkjs_secret": secret, "notifly_secret": secret,
		"amity_secret": secret, "cometchat_password": secret, "webhook_secret": secret,
		"vapid_private_key": secret, "redis_url": secretURL, "jwks_url": secretURL,
		"fcm_endpoint": secretURL, "apns_host": secretURL, "stream_secret": secret, "sendbird_token": secret,
		"apns_cert_password": secret, "push_webhook_url": secretURL, "push_webhook_secret": secret,
		"redis_password": secret, "redis_sentinel_password": secret,
	}
	for i := range settings {
		s := &settings[i]
		if s.show != want[s.key] {
			t.Errorf("%s: exposure %d, want %d", s.key, s.show, want[s.key])
		}
		if s.show != public {
			if _, ok := s.field(new(Config)).(*string); !ok {
				t.Errorf("%s is secret but not a string", s.key)
			}
		}
	}
}
