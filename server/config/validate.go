package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/heraldhq/herald/pkg/token"
)

// Bounds that Validate enforces.
const (
	// MinWSReadLimit leaves room for an ack frame with a long id.
	MinWSReadLimit = 128
	// MaxWSReadLimit keeps one client from making the node buffer much.
	MaxWSReadLimit = 1 << 20
	// MaxWebhookQueuePartitions is redisstore.MaxPartitions: the queue
	// has no more distinct streams.
	MaxWebhookQueuePartitions = 256
)

// Validate reports every problem of c at once, joined, one per line, each
// starting with the environment name of the setting it is about, e.g.
// "HERALD_ACK_TIMEOUT: must be positive". Call it after secrets that a
// zero-config node generates have been filled in: it requires a JWT
// secret (or JWKS URL) and an API key.
func (c *Config) Validate() error {
	v := validation{}

	if c.Addr == "" {
		v.bad("addr", "must not be empty")
	} else if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		v.bad("addr", "must be host:port or :port")
	}
	if !c.UsesRedis() && c.DataDir == "" {
		v.bad("data_dir", "must not be empty without HERALD_REDIS_URL")
	}
	c.validateRedis(&v)
	if c.NodeID != "" && !validNodeID(c.NodeID) {
		v.bad("node_id", "must be 1 to 64 letters, digits, '.', '_', ':' or '-'")
	}

	switch {
	case c.JWTSecret == "" && c.JWKSURL == "":
		v.bad("jwt_secret", "a JWT secret or HERALD_JWKS_URL is required")
	case c.JWTSecret != "" && len(c.JWTSecret) < token.MinSecretLen:
		v.bad("jwt_secret", fmt.Sprintf("must be at least %d bytes", token.MinSecretLen))
	}
	if c.JWKSURL != "" {
		v.url("jwks_url", c.JWKSURL, "https", "http")
	}
	if c.APIKey == "" {
		v.bad("api_key", "is required")
	}
	for _, o := range c.AllowedOrigins {
		if o != "*" && !validOrigin(o) {
			v.bad("allowed_origins", fmt.Sprintf("%q is not an origin: want scheme://host[:port] without a path, or *", o))
		}
	}

	if (c.CometChatUser == "") != (c.CometChatPassword == "") {
		v.bad("cometchat_password", "HERALD_COMETCHAT_USER and HERALD_COMETCHAT_PASSWORD are set together")
	}
	if c.WebhookSecret != "" && !validWebhookSecret(c.WebhookSecret) {
		v.bad("webhook_secret", "must be whsec_ followed by base64")
	}

	if (c.VAPIDPublicKey == "") != (c.VAPIDPrivateKey == "") {
		v.bad("vapid_private_key", "HERALD_VAPID_PUBLIC_KEY and HERALD_VAPID_PRIVATE_KEY are set together")
	}
	if c.VAPIDSubject != "" && !strings.HasPrefix(c.VAPIDSubject, "mailto:") && !strings.HasPrefix(c.VAPIDSubject, "https://") {
		v.bad("vapid_subject", "must start with mailto: or https://")
	}
	if c.FCMEndpoint != "" {
		v.url("fcm_endpoint", c.FCMEndpoint, "https", "http")
	}
	c.validateAPNs(&v)
	c.validateCredentials(&v)
	if c.PushWebhookURL != "" {
		v.url("push_webhook_url", c.PushWebhookURL, "https", "http")
		if !validWebhookSecret(c.PushWebhookSecret) {
			v.bad("push_webhook_secret", "a whsec_ secret is required with HERALD_PUSH_WEBHOOK_URL")
		}
	}
	for _, h := range c.PushAllowPrivate {
		if !validHostOrPrefix(h) {
			v.bad("push_allow_private", fmt.Sprintf("%q is not a host name, IP address or CIDR", h))
		}
	}

	if c.HistoryMaxCount <= 0 {
		v.bad("history_max_count", "must be positive")
	}
	for _, d := range []struct {
		key string
		d   time.Duration
	}{
		{"ack_timeout", c.AckTimeout},
		{"history_max_age", c.HistoryMaxAge},
		{"shutdown_timeout", c.ShutdownTimeout},
		{"write_timeout", c.WriteTimeout},
		{"ping_interval", c.PingInterval},
		{"presence_ttl", c.PresenceTTL},
		{"read_timeout", c.ReadTimeout},
	} {
		if d.d <= 0 {
			v.bad(d.key, "must be positive")
		}
	}
	if c.WSReadLimit < MinWSReadLimit || c.WSReadLimit > MaxWSReadLimit {
		v.bad("ws_read_limit", fmt.Sprintf("must be between %d and %d bytes", MinWSReadLimit, MaxWSReadLimit))
	}
	if c.SessionQueue <= 0 {
		v.bad("session_queue", "must be positive")
	}
	if c.SessionQueueBytes < 4<<10 {
		v.bad("session_queue_bytes", "must be at least 4096")
	}
	if c.WebhookQueuePartitions < 1 || c.WebhookQueuePartitions > MaxWebhookQueuePartitions {
		v.bad("webhook_queue_partitions", fmt.Sprintf("must be between 1 and %d", MaxWebhookQueuePartitions))
	}
	for _, n := range []struct {
		key string
		n   int
	}{
		{"ack_rate", c.AckRate},
		{"max_conns_per_ip", c.MaxConnsPerIP},
		{"max_sessions_per_user", c.MaxSessionsPerUser},
		{"max_devices_per_user", c.MaxDevicesPerUser},
	} {
		if n.n < 0 {
			v.bad(n.key, "must not be negative (0 turns it off)")
		}
	}
	if c.AckRate > 0 && c.AckBurst < 1 {
		v.bad("ack_burst", "must be positive with HERALD_ACK_RATE")
	}
	for _, p := range c.TrustedProxies {
		if !validIPOrPrefix(p) {
			v.bad("trusted_proxies", fmt.Sprintf("%q is not an IP address or CIDR", p))
		}
	}

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		v.bad("log_level", "must be debug, info, warn or error")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		v.bad("log_format", "must be text or json")
	}
	return errors.Join(v.errs...)
}

// MaxRedisReplicaTimeout bounds HERALD_REDIS_REPLICA_TIMEOUT.
const MaxRedisReplicaTimeout = 2 * time.Second

// validateRedis checks the Redis form: at most one of URL, cluster and
// sentinel, each complete.
func (c *Config) validateRedis(v *validation) {
	var forms []string
	if c.RedisURL != "" {
		forms = append(forms, "redis_url")
		v.url("redis_url", c.RedisURL, "redis", "rediss", "unix")
	}
	if len(c.RedisClusterAddrs) > 0 {
		forms = append(forms, "redis_cluster_addrs")
		validHostPorts(v, "redis_cluster_addrs", c.RedisClusterAddrs)
	}
	if len(c.RedisSentinelAddrs) > 0 {
		forms = append(forms, "redis_sentinel_addrs")
		validHostPorts(v, "redis_sentinel_addrs", c.RedisSentinelAddrs)
		if c.RedisSentinelMaster == "" {
			v.bad("redis_sentinel_master", "is required with HERALD_REDIS_SENTINEL_ADDRS")
		}
	} else {
		for _, o := range []struct {
			key string
			set bool
		}{
			{"redis_sentinel_master", c.RedisSentinelMaster != ""},
			{"redis_sentinel_username", c.RedisSentinelUsername != ""},
			{"redis_sentinel_password", c.RedisSentinelPassword != ""},
		} {
			if o.set {
				v.bad(o.key, "goes with HERALD_REDIS_SENTINEL_ADDRS")
			}
		}
	}
	if len(forms) > 1 {
		names := make([]string, len(forms))
		for i, f := range forms {
			names[i] = envPrefix + strings.ToUpper(f)
		}
		v.bad(forms[1], "Redis is given more than one way ("+strings.Join(names, ", ")+"); set exactly one")
	}
	if c.RedisMinReplicas < 0 {
		v.bad("redis_min_replicas", "must not be negative (0 turns it off)")
	}
	// The wait must end before the Redis client's read deadline (3s).
	if c.RedisReplicaTimeout <= 0 || c.RedisReplicaTimeout > MaxRedisReplicaTimeout {
		v.bad("redis_replica_timeout", fmt.Sprintf("must be positive and at most %s", MaxRedisReplicaTimeout))
	}
	if c.RedisURL != "" || len(forms) == 0 {
		for _, o := range []struct {
			key string
			set bool
		}{
			{"redis_username", c.RedisUsername != ""},
			{"redis_password", c.RedisPassword != ""},
			{"redis_tls", c.RedisTLS},
		} {
			if o.set {
				v.bad(o.key, "goes with HERALD_REDIS_CLUSTER_ADDRS or HERALD_REDIS_SENTINEL_ADDRS (HERALD_REDIS_URL carries its own credentials and rediss:// for TLS)")
			}
		}
	}
}

// validHostPorts checks that every address is host:port.
func validHostPorts(v *validation, key string, addrs []string) {
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			v.bad(key, fmt.Sprintf("%q is not host:port", a))
		}
	}
}

// validateAPNs checks APNs token auth: all four values or none.
func (c *Config) validateAPNs(v *validation) {
	parts := []struct{ key, val string }{
		{"apns_key_file", c.APNsKeyFile}, {"apns_key_id", c.APNsKeyID},
		{"apns_team_id", c.APNsTeamID}, {"apns_topic", c.APNsTopic},
	}
	if c.APNsCertFile != "" {
		// Certificate auth: the certificate names the team; only the topic
		// is needed besides it.
		if c.APNsTopic == "" {
			v.bad("apns_topic", "is required with HERALD_APNS_CERT_FILE")
		}
		parts = nil
	}
	set := 0
	for _, p := range parts {
		if p.val != "" {
			set++
		}
	}
	if set > 0 && set < len(parts) {
		for _, p := range parts {
			if p.val == "" {
				v.bad(p.key, "is required with the other APNs settings (HERALD_APNS_KEY_FILE, _KEY_ID, _TEAM_ID, _TOPIC)")
			}
		}
	}
	switch c.APNsEnv {
	case "production", "sandbox", "development":
	default:
		v.bad("apns_env", "must be production or sandbox")
	}
	if c.APNsHost != "" {
		v.url("apns_host", c.APNsHost, "https", "http")
	}
}

// validation collects problems, each named by its variable.
type validation struct{ errs []error }

func (v *validation) bad(key, msg string) {
	v.errs = append(v.errs, fmt.Errorf("%s%s: %s", envPrefix, strings.ToUpper(key), msg))
}

// url checks that raw is an absolute URL of one of schemes. The URL itself
// is not repeated: it may hold credentials.
func (v *validation) url(key, raw string, schemes ...string) {
	u, err := url.Parse(raw)
	if err != nil {
		v.bad(key, "is not a URL")
		return
	}
	for _, s := range schemes {
		if u.Scheme == s && (u.Host != "" || s == "unix") {
			return
		}
	}
	prefixes := make([]string, len(schemes))
	for i, s := range schemes {
		prefixes[i] = s + "://"
	}
	v.bad(key, "must be a URL starting with "+strings.Join(prefixes, " or "))
}

func validOrigin(o string) bool {
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return false
	}
	// A trailing slash is forgiven; browsers never send one, and the
	// origin check trims it.
	return u.Path == "" || u.Path == "/"
}

func validNodeID(id string) bool {
	if len(id) > 64 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == ':', r == '-':
		default:
			return false
		}
	}
	return true
}

// validWebhookSecret accepts Standard Webhooks secrets: whsec_ + base64.
func validWebhookSecret(s string) bool {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok || b64 == "" {
		return false
	}
	_, err := base64.StdEncoding.DecodeString(b64)
	return err == nil
}

// validHostOrPrefix accepts an IP address, a CIDR or a DNS host name.
func validHostOrPrefix(h string) bool {
	if _, err := netip.ParsePrefix(h); err == nil {
		return true
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// validateCredentials checks the labelled credentials of herald.yaml:
// known platforms, labels present and distinct, exactly one active each.
func (c *Config) validateCredentials(v *validation) {
	for platform, list := range c.Credentials {
		switch platform {
		case "webpush", "fcm", "apns":
		default:
			v.bad("credentials", fmt.Sprintf("unknown platform %q (webpush, fcm, apns)", platform))
			continue
		}
		labels := map[string]bool{}
		var active []string
		for i, cr := range list {
			if cr.Label == "" {
				v.bad("credentials", fmt.Sprintf("%s[%d]: label is required", platform, i))
			} else if labels[cr.Label] {
				v.bad("credentials", fmt.Sprintf("%s: label %q is used twice", platform, cr.Label))
			}
			labels[cr.Label] = true
			if cr.Active {
				active = append(active, cr.Label)
			}
		}
		switch {
		case len(list) > 0 && len(active) == 0:
			v.bad("credentials", fmt.Sprintf("%s: no credential is active; mark exactly one active: true", platform))
		case len(active) > 1:
			v.bad("credentials", fmt.Sprintf("%s: %d credentials are active (%s); exactly one may be", platform, len(active), strings.Join(active, ", ")))
		}
	}
}

// validIPOrPrefix reports whether s is an IP address or a CIDR prefix.
func validIPOrPrefix(s string) bool {
	if _, err := netip.ParsePrefix(s); err == nil {
		return true
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}
