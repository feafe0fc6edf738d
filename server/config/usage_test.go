package config

import (
	"strings"
	"testing"
	"time"
)

// specNames are the environment variables SPEC §3 makes part of the
// contract, plus the ones this package adds.
var specNames = []string{
	"HERALD_ADDR", "HERALD_DATA_DIR", "HERALD_REDIS_URL", "HERALD_JWT_SECRET", "HERALD_JWKS_URL",
	"HERALD_API_KEY", "HERALD_ALLOWED_ORIGINS", "HERALD_ACK_TIMEOUT", "HERALD_TALKJS_SECRET",
	"HERALD_NOTIFLY_SECRET", "HERALD_AMITY_SECRET", "HERALD_COMETCHAT_USER", "HERALD_COMETCHAT_PASSWORD",
	"HERALD_WEBHOOK_SECRET", "HERALD_VAPID_PUBLIC_KEY", "HERALD_VAPID_PRIVATE_KEY", "HERALD_VAPID_SUBJECT",
	"HERALD_FCM_CREDENTIALS", "HERALD_FCM_ENDPOINT", "HERALD_APNS_KEY_FILE", "HERALD_APNS_KEY_ID",
	"HERALD_APNS_TEAM_ID", "HERALD_APNS_TOPIC", "HERALD_APNS_ENV", "HERALD_APNS_HOST",
	"HERALD_PUSH_ALLOW_PRIVATE",
	"HERALD_LOG_LEVEL", "HERALD_LOG_FORMAT", "HERALD_DEMO", "HERALD_HISTORY_MAX_COUNT",
	"HERALD_HISTORY_MAX_AGE", "HERALD_SHUTDOWN_TIMEOUT", "HERALD_WS_READ_LIMIT", "HERALD_WRITE_TIMEOUT",
	"HERALD_PING_INTERVAL", "HERALD_SESSION_QUEUE", "HERALD_SESSION_QUEUE_BYTES", "HERALD_PRESENCE_TTL", "HERALD_NODE_ID",
	"HERALD_REDIS_SHARDED", "HERALD_METRICS",
	"HERALD_WEBHOOKS_ENABLED", "HERALD_WEBHOOK_MAX_BODY", "HERALD_WEBHOOK_WORKERS", "HERALD_WEBHOOK_MAX_ATTEMPTS",
	"HERALD_WEBHOOK_RETRY_AFTER", "HERALD_WEBHOOK_DEDUPE_TTL", "HERALD_WEBHOOK_QUEUE_PARTITIONS", "HERALD_THROTTLE_WINDOW",
	"HERALD_STREAM_SECRET", "HERALD_SENDBIRD_TOKEN",
	"HERALD_APNS_CERT_FILE", "HERALD_APNS_CERT_PASSWORD", "HERALD_PUSH_ENABLED", "HERALD_PUSH_WEBHOOK_URL",
	"HERALD_PUSH_WEBHOOK_SECRET", "HERALD_PPROF_ADDR",
	"HERALD_METRICS_ADDR", "HERALD_READ_TIMEOUT", "HERALD_MAX_CONNS_PER_IP", "HERALD_TRUSTED_PROXIES",
	"HERALD_MAX_SESSIONS_PER_USER", "HERALD_MAX_DEVICES_PER_USER", "HERALD_ACK_RATE", "HERALD_ACK_BURST", "HERALD_MARK_RATE", "HERALD_MARK_BURST",
	"HERALD_REDIS_CLUSTER_ADDRS", "HERALD_REDIS_SENTINEL_ADDRS", "HERALD_REDIS_SENTINEL_MASTER",
	"HERALD_REDIS_USERNAME", "HERALD_REDIS_PASSWORD", "HERALD_REDIS_TLS",
	"HERALD_REDIS_MIN_REPLICAS", "HERALD_REDIS_REPLICA_TIMEOUT",
	"HERALD_REDIS_SENTINEL_USERNAME", "HERALD_REDIS_SENTINEL_PASSWORD",
}

func TestEveryContractNameIsASetting(t *testing.T) {
	have := map[string]bool{}
	for i := range settings {
		have[settings[i].env()] = true
	}
	for _, name := range specNames {
		if !have[name] {
			t.Errorf("%s is not a setting", name)
		}
	}
	if len(settings) != len(specNames) {
		t.Errorf("%d settings, %d names listed here: keep this list in step", len(settings), len(specNames))
	}
}

func TestSettingsAreWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for i := range settings {
		s := &settings[i]
		if seen[s.key] {
			t.Errorf("%s listed twice", s.key)
		}
		seen[s.key] = true
		if s.key != strings.ToLower(s.key) || strings.ContainsAny(s.key, "- ") {
			t.Errorf("%s is not snake_case", s.key)
		}
		if s.help == "" {
			t.Errorf("%s has no help", s.key)
		}
		// Each setting points at its own field.
		c := new(Config)
		for j := range settings {
			if j != i && settings[j].field(c) == s.field(c) {
				t.Errorf("%s and %s share a field", s.key, settings[j].key)
			}
		}
	}
}

func TestUsageListsEverySettingWithItsDefault(t *testing.T) {
	u := Usage()
	lines := strings.Split(u, "\n")
	def := Default()
	for i := range settings {
		s := &settings[i]
		var line string
		for _, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), "--"+s.flag()+" ") {
				line = l
			}
		}
		if line == "" {
			t.Errorf("--%s missing from usage", s.flag())
			continue
		}
		if !strings.Contains(line, s.env()) {
			t.Errorf("usage line of --%s lacks %s: %q", s.flag(), s.env(), line)
		}
		if v := s.get(def); v != "" && v != "false" && !strings.Contains(line, "(default "+v+")") {
			t.Errorf("usage line of --%s lacks its default %q: %q", s.flag(), v, line)
		}
	}
	if !strings.Contains(u, "HERALD_CONFIG") {
		t.Error("usage does not mention HERALD_CONFIG")
	}
}

func TestDurations(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		fmt  string
	}{
		{"5s", 5 * time.Second, "5s"},
		{" 1m30s ", 90 * time.Second, "1m30s"},
		{"1h", time.Hour, "1h"},
		{"90m", 90 * time.Minute, "1h30m"},
		{"7d", 7 * 24 * time.Hour, "7d"},
		{"168h", 7 * 24 * time.Hour, "7d"},
		{"250ms", 250 * time.Millisecond, "250ms"},
		{"0", 0, "0s"},
		{"-5s", -5 * time.Second, "-5s"},
	}
	for _, tc := range cases {
		got, err := parseDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		if f := formatDuration(got); f != tc.fmt {
			t.Errorf("formatDuration(%v) = %q, want %q", got, f, tc.fmt)
		}
		if back, err := parseDuration(formatDuration(got)); err != nil || back != got {
			t.Errorf("%q does not read back: %v, %v", formatDuration(got), back, err)
		}
	}
	for _, bad := range []string{"", "5", "soon", "1.5d", "d", "99999999d", "5 s"} {
		if d, err := parseDuration(bad); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", bad, d)
		}
	}
}
