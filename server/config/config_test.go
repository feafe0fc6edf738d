package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestPrecedenceFlagEnvFileDefault(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "herald.yaml")
	yaml := "addr: \":7000\"\nack_timeout: 7s\nhistory_max_count: 70\nallowed_origins:\n  - https://a.example\n  - https://b.example\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := envOf(map[string]string{"HERALD_CONFIG": file, "HERALD_ACK_TIMEOUT": "8s", "HERALD_ADDR": ":8000"})
	c, err := Load([]string{"--addr", ":9000"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":9000" {
		t.Errorf("flag must beat env and file: addr %q", c.Addr)
	}
	if c.AckTimeout != 8*time.Second {
		t.Errorf("env must beat file: ack timeout %v", c.AckTimeout)
	}
	if c.HistoryMaxCount != 70 {
		t.Errorf("file must beat default: history max count %d", c.HistoryMaxCount)
	}
	if strings.Join(c.AllowedOrigins, ",") != "https://a.example,https://b.example" {
		t.Errorf("list from file: %v", c.AllowedOrigins)
	}
	if c.DataDir != "./data" || c.PingInterval != 25*time.Second {
		t.Errorf("defaults: %q %v", c.DataDir, c.PingInterval)
	}
}

func TestTypesParse(t *testing.T) {
	env := envOf(map[string]string{
		"HERALD_ALLOWED_ORIGINS": "https://x.example, https://y.example", "HERALD_REDIS_SHARDED": "true",
		"HERALD_WS_READ_LIMIT": "8192", "HERALD_HISTORY_MAX_AGE": "48h",
	})
	c, err := Load(nil, env)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.AllowedOrigins) != 2 || c.AllowedOrigins[1] != "https://y.example" || !c.RedisSharded || c.WSReadLimit != 8192 || c.HistoryMaxAge != 48*time.Hour {
		t.Fatalf("%+v", c)
	}
}

func TestErrorsNameTheSetting(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		yaml string
		want string
	}{
		{env: map[string]string{"HERALD_ACK_TIMEOUT": "soon"}, want: "HERALD_ACK_TIMEOUT"},
		{args: []string{"--session-queue", "x"}, want: "--session-queue"},
		{yaml: "adr: x\n", want: `unknown key "adr"`},
		{yaml: "history_max_count: lots\n", want: "history_max_count"},
	}
	for _, tc := range cases {
		env := tc.env
		if env == nil {
			env = map[string]string{}
		}
		if tc.yaml != "" {
			f := filepath.Join(t.TempDir(), "h.yaml")
			_ = os.WriteFile(f, []byte(tc.yaml), 0o600)
			env["HERALD_CONFIG"] = f
		}
		_, err := Load(tc.args, envOf(env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want error naming %s, got %v", tc.want, err)
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.AckTimeout = 0
	c.SessionQueue = 0
	c.AllowedOrigins = []string{"example.com"}
	c.LogFormat = "xml"
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config validated")
	}
	for _, name := range []string{"HERALD_ACK_TIMEOUT", "HERALD_SESSION_QUEUE", "HERALD_ALLOWED_ORIGINS", "HERALD_LOG_FORMAT", "HERALD_JWT_SECRET", "HERALD_API_KEY"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("%s not reported in %v", name, err)
		}
	}
}

func TestLogValueRedactsSecrets(t *testing.T) {
	c := Default()
	c.JWTSecret, c.APIKey, c.RedisURL = "s3cret-s3cret-s3cret", "key-123", "redis://:pw@host:6379"
	out := c.LogValue().String()
	for _, secret := range []string{"s3cret", "key-123", ":pw@"} {
		if strings.Contains(out, secret) {
			t.Fatalf("secret %q in %s", secret, out)
		}
	}
}
