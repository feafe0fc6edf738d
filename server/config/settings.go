package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// envPrefix starts every environment variable Herald reads.
const envPrefix = "HERALD_"

// exposure says how a setting's value may be shown in logs.
type exposure int

const (
	public    exposure = iota // shown as is
	secret                    // never shown, only whether it is set
	secretURL                 // shown with its credentials removed
)

// setting binds one key to a field of Config.
type setting struct {
	key   string // snake_case YAML key; env and flag names derive from it
	show  exposure
	help  string
	field func(c *Config) any // pointer to the field in c
}

// settings lists every setting, in the order of the usage text.
var settings = []setting{
	{"addr", public, "listen address", func(c *Config) any { return &c.Addr }},
	{"data_dir", public, "embedded store and generated secrets directory", func(c *Config) any { return &c.DataDir }},
	{"redis_url", secretURL, "redis://… to join a cluster through Redis instead of the embedded store", func(c *Config) any { return &c.RedisURL }},
	{"redis_sharded", public, "use sharded pub/sub (always on with a Redis Cluster)", func(c *Config) any { return &c.RedisSharded }},
	{"redis_cluster_addrs", public, "seed host:port of a Redis Cluster, instead of HERALD_REDIS_URL (comma list)", func(c *Config) any { return &c.RedisClusterAddrs }},
	{"redis_sentinel_addrs", public, "host:port of Redis Sentinels, instead of HERALD_REDIS_URL (comma list)", func(c *Config) any { return &c.RedisSentinelAddrs }},
	{"redis_sentinel_master", public, "name of the primary the Sentinels monitor", func(c *Config) any { return &c.RedisSentinelMaster }},
	{"redis_sentinel_username", public, "user for the Sentinels themselves", func(c *Config) any { return &c.RedisSentinelUsername }},
	{"redis_sentinel_password", secret, "password for the Sentinels themselves", func(c *Config) any { return &c.RedisSentinelPassword }},
	{"redis_username", public, "Redis user of the cluster or sentinel form", func(c *Config) any { return &c.RedisUsername }},
	{"redis_password", secret, "Redis password of the cluster or sentinel form", func(c *Config) any { return &c.RedisPassword }},
	{"redis_min_replicas", public, "replicas that must acknowledge each notification, among those connected (0: none)", func(c *Config) any { return &c.RedisMinReplicas }},
	{"redis_replica_timeout", public, "bound on the wait for replicas before a send answers 503 (at most 2s)", func(c *Config) any { return &c.RedisReplicaTimeout }},
	{"redis_tls", public, "connect over TLS in the cluster or sentinel form", func(c *Config) any { return &c.RedisTLS }},
	{"node_id", public, "this node's name in presence and logs (random when empty)", func(c *Config) any { return &c.NodeID }},
	{"jwt_secret", secret, "HS256 secret for user tokens (generated in zero-config mode)", func(c *Config) any { return &c.JWTSecret }},
	{"jwks_url", secretURL, "JWKS URL for RS256/ES256 user tokens", func(c *Config) any { return &c.JWKSURL }},
	{"api_key", secret, "bearer key for the server API (generated in zero-config mode)", func(c *Config) any { return &c.APIKey }},
	{"allowed_origins", public, "origins allowed to open WS/SSE from a browser (comma list; * for any)", func(c *Config) any { return &c.AllowedOrigins }},
	{"ack_timeout", public, "how long live delivery waits for an ack before push fallback", func(c *Config) any { return &c.AckTimeout }},
	{"talkjs_secret", secret, "TalkJS webhook signing secret", func(c *Config) any { return &c.TalkJSSecret }},
	{"notifly_secret", secret, "Notifly webhook signing secret", func(c *Config) any { return &c.NotiflySecret }},
	{"amity_secret", secret, "Amity webhook signing secret", func(c *Config) any { return &c.AmitySecret }},
	{"cometchat_user", public, "CometChat webhook Basic auth user", func(c *Config) any { return &c.CometChatUser }},
	{"cometchat_password", secret, "CometChat webhook Basic auth password", func(c *Config) any { return &c.CometChatPassword }},
	{"webhook_secret", secret, "whsec_… secret for Standard Webhooks on /webhooks/herald", func(c *Config) any { return &c.WebhookSecret }},
	{"vapid_public_key", public, "Web Push VAPID public key", func(c *Config) any { return &c.VAPIDPublicKey }},
	{"vapid_private_key", secret, "Web Push VAPID private key", func(c *Config) any { return &c.VAPIDPrivateKey }},
	{"vapid_subject", public, "Web Push VAPID subject (mailto: or https:)", func(c *Config) any { return &c.VAPIDSubject }},
	{"fcm_credentials", public, "path to an FCM service-account JSON", func(c *Config) any { return &c.FCMCredentials }},
	{"fcm_endpoint", secretURL, "FCM base URL override (tests)", func(c *Config) any { return &c.FCMEndpoint }},
	{"apns_key_file", public, "APNs .p8 signing key file", func(c *Config) any { return &c.APNsKeyFile }},
	{"apns_key_id", public, "APNs key id", func(c *Config) any { return &c.APNsKeyID }},
	{"apns_team_id", public, "APNs team id", func(c *Config) any { return &c.APNsTeamID }},
	{"apns_topic", public, "APNs topic (the app's bundle id)", func(c *Config) any { return &c.APNsTopic }},
	{"apns_env", public, "APNs environment: production or sandbox", func(c *Config) any { return &c.APNsEnv }},
	{"apns_host", secretURL, "APNs host URL override (tests)", func(c *Config) any { return &c.APNsHost }},
	{"apns_cert_file", public, "APNs .p12 certificate (instead of a .p8 key)", func(c *Config) any { return &c.APNsCertFile }},
	{"apns_cert_password", secret, "password of the APNs .p12 certificate", func(c *Config) any { return &c.APNsCertPassword }},
	{"push_enabled", public, "master push switch", func(c *Config) any { return &c.PushEnabled }},
	{"push_webhook_url", secretURL, "URL receiving every push as a signed webhook (custom provider)", func(c *Config) any { return &c.PushWebhookURL }},
	{"push_webhook_secret", secret, "whsec_… secret signing the push webhook", func(c *Config) any { return &c.PushWebhookSecret }},
	{"push_allow_private", public, "hosts/CIDRs push endpoints may use although private or loopback (tests; comma list)", func(c *Config) any { return &c.PushAllowPrivate }},
	{"history_max_count", public, "notifications kept per user", func(c *Config) any { return &c.HistoryMaxCount }},
	{"history_max_age", public, "how long notifications are kept", func(c *Config) any { return &c.HistoryMaxAge }},
	{"shutdown_timeout", public, "bound on a graceful shutdown", func(c *Config) any { return &c.ShutdownTimeout }},
	{"ws_read_limit", public, "largest WebSocket frame a client may send, in bytes", func(c *Config) any { return &c.WSReadLimit }},
	{"write_timeout", public, "deadline of one write to a client", func(c *Config) any { return &c.WriteTimeout }},
	{"ping_interval", public, "WebSocket ping and SSE heartbeat interval", func(c *Config) any { return &c.PingInterval }},
	{"session_queue", public, "frames a client may fall behind before it is cut off", func(c *Config) any { return &c.SessionQueue }},
	{"session_queue_bytes", public, "bytes of frames a client may fall behind before it is cut off", func(c *Config) any { return &c.SessionQueueBytes }},
	{"read_timeout", public, "deadline for reading a non-streaming request body (then 408)", func(c *Config) any { return &c.ReadTimeout }},
	{"max_conns_per_ip", public, "concurrent connections per client address (0: no cap)", func(c *Config) any { return &c.MaxConnsPerIP }},
	{"trusted_proxies", public, "reverse proxies (addresses or CIDRs) whose X-Forwarded-For is believed (comma list)", func(c *Config) any { return &c.TrustedProxies }},
	{"ack_rate", public, "notification ids one user may ack per second (0: unlimited)", func(c *Config) any { return &c.AckRate }},
	{"ack_burst", public, "notification ids one user may ack at once", func(c *Config) any { return &c.AckBurst }},
	{"mark_rate", public, "read, seen and dismiss requests one user may make per second (0: unlimited)", func(c *Config) any { return &c.MarkRate }},
	{"mark_burst", public, "read, seen and dismiss requests one user may make at once", func(c *Config) any { return &c.MarkBurst }},
	{"max_sessions_per_user", public, "live sessions of one user on a node; a new one closes the oldest (0: unlimited)", func(c *Config) any { return &c.MaxSessionsPerUser }},
	{"max_devices_per_user", public, "push devices of one user (0: unlimited)", func(c *Config) any { return &c.MaxDevicesPerUser }},
	{"presence_ttl", public, "how long a dead node's sessions stay visible (Redis mode)", func(c *Config) any { return &c.PresenceTTL }},
	{"log_level", public, "debug, info, warn or error", func(c *Config) any { return &c.LogLevel }},
	{"log_format", public, "text or json", func(c *Config) any { return &c.LogFormat }},
	{"webhooks_enabled", public, "master switch of webhook notifications", func(c *Config) any { return &c.WebhooksEnabled }},
	{"webhook_max_body", public, "largest webhook body, in bytes", func(c *Config) any { return &c.WebhookMaxBody }},
	{"webhook_workers", public, "workers processing queued webhooks on this node", func(c *Config) any { return &c.WebhookWorkers }},
	{"webhook_max_attempts", public, "tries of a queued webhook before the dead letters", func(c *Config) any { return &c.WebhookMaxAttempts }},
	{"webhook_retry_after", public, "wait before a failed or abandoned webhook is tried again", func(c *Config) any { return &c.WebhookRetryAfter }},
	{"webhook_dedupe_ttl", public, "how long a provider's event id is remembered", func(c *Config) any { return &c.WebhookDedupeTTL }},
	{"webhook_queue_partitions", public, "streams the Redis webhook queue is spread over (1 to 256; 1: one stream)", func(c *Config) any { return &c.WebhookQueuePartitions }},
	{"throttle_window", public, "collapse a burst per user and conversation into one popup (0: off)", func(c *Config) any { return &c.ThrottleWindow }},
	{"stream_secret", secret, "Stream Chat webhook signing secret", func(c *Config) any { return &c.StreamSecret }},
	{"sendbird_token", secret, "Sendbird webhook API token", func(c *Config) any { return &c.SendbirdToken }},
	{"demo", public, "serve the demo page's development helpers", func(c *Config) any { return &c.Demo }},
	{"pprof_addr", public, "serve net/http/pprof on this address (e.g. 127.0.0.1:6060; off when empty)", func(c *Config) any { return &c.PprofAddr }},
	{"metrics", public, "serve Prometheus metrics at /metrics", func(c *Config) any { return &c.Metrics }},
	{"metrics_addr", public, "serve /metrics on this address instead of the public listener (e.g. 127.0.0.1:9090)", func(c *Config) any { return &c.MetricsAddr }},
}

// structured are the herald.yaml keys whose values are whole trees,
// decoded into their field as they are; they have no flag or variable.
var structured = map[string]func(c *Config) any{
	"events":      func(c *Config) any { return &c.Events },
	"templates":   func(c *Config) any { return &c.Templates },
	"credentials": func(c *Config) any { return &c.Credentials },
}

// byKey finds a setting by its snake_case key.
var byKey = func() map[string]*setting {
	m := make(map[string]*setting, len(settings))
	for i := range settings {
		m[settings[i].key] = &settings[i]
	}
	return m
}()

func (s *setting) env() string  { return envPrefix + strings.ToUpper(s.key) }
func (s *setting) flag() string { return strings.ReplaceAll(s.key, "_", "-") }

// isBool reports whether the setting is a boolean, which as a flag may be
// given without a value.
func (s *setting) isBool() bool {
	_, ok := s.field(new(Config)).(*bool)
	return ok
}

// typeName describes the setting's values in the usage text.
func (s *setting) typeName() string {
	switch s.field(new(Config)).(type) {
	case *bool:
		return "bool"
	case *int, *int64:
		return "int"
	case *time.Duration:
		return "duration"
	case *[]string:
		return "list"
	default:
		return "string"
	}
}

// set parses raw into the setting's field of c. Errors do not repeat raw:
// callers add it where it is safe to show.
func (s *setting) set(c *Config, raw string) error {
	switch p := s.field(c).(type) {
	case *string:
		*p = raw
	case *bool:
		b, err := parseBool(raw)
		if err != nil {
			return err
		}
		*p = b
	case *int:
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil {
			return errors.New("not an integer")
		}
		*p = n
	case *int64:
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil {
			return errors.New("not an integer")
		}
		*p = n
	case *time.Duration:
		d, err := parseDuration(raw)
		if err != nil {
			return err
		}
		*p = d
	case *[]string:
		*p = splitList(raw)
	default:
		return fmt.Errorf("setting %s has an unsupported type %T", s.key, p)
	}
	return nil
}

// setList assigns a YAML sequence, which only list settings take.
func (s *setting) setList(c *Config, items []string) error {
	p, ok := s.field(c).(*[]string)
	if !ok {
		return errors.New("expected a single value, not a list")
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	*p = out
	return nil
}

// get formats the setting's field of c as set would read it back.
func (s *setting) get(c *Config) string {
	switch p := s.field(c).(type) {
	case *string:
		return *p
	case *bool:
		return strconv.FormatBool(*p)
	case *int:
		return strconv.Itoa(*p)
	case *int64:
		return strconv.FormatInt(*p, 10)
	case *time.Duration:
		return formatDuration(*p)
	case *[]string:
		return strings.Join(*p, ",")
	default:
		return ""
	}
}

func parseBool(raw string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(raw)) {
	case "1", "t", "true", "y", "yes", "on":
		return true, nil
	case "0", "f", "false", "n", "no", "off":
		return false, nil
	}
	return false, errors.New("not a boolean (true or false)")
}

// parseDuration reads Go duration syntax, or a whole number of days ("7d")
// since retention is naturally counted in days.
func parseDuration(raw string) (time.Duration, error) {
	raw = strings.TrimSpace(raw)
	bad := errors.New("not a duration (e.g. 5s, 1m30s, 7d)")
	if days, ok := strings.CutSuffix(raw, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < -106751 || n > 106751 { // ±292 years: the range of time.Duration
			return 0, bad
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil {
		return 0, bad
	}
	return d, nil
}

// formatDuration is the inverse of parseDuration, in its shortest form.
func formatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d != 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	s := d.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

// splitList reads a comma-separated list, dropping blanks.
func splitList(raw string) []string {
	var out []string
	for item := range strings.SplitSeq(raw, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
