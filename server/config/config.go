// Package config owns Herald's configuration: the Config struct, its
// defaults (all in [Default]), how flags, HERALD_* environment variables
// and herald.yaml fill it, its validation, and how it is logged without
// its secrets.
//
// Every setting has one snake_case key from which its other names derive:
//
//	herald.yaml key   history_max_count   (or nested: history: {max_count: …})
//	environment       HERALD_HISTORY_MAX_COUNT
//	flag              --history-max-count
//
// A flag beats the environment, which beats the file, which beats the
// default. Durations use Go syntax ("5s", "1m30s") or whole days ("7d");
// lists are comma separated in flags and the environment and YAML lists
// (or a comma-separated string) in the file; booleans are true/false (also
// 1/0, yes/no, on/off). An empty environment variable counts as unset.
package config

import "time"

// UsesRedis reports whether the node keeps its state in Redis, in any of
// the three forms (URL, cluster, sentinel), rather than embedded.
func (c *Config) UsesRedis() bool {
	return c.RedisURL != "" || len(c.RedisClusterAddrs) > 0 || len(c.RedisSentinelAddrs) > 0
}

// Config is everything a node can be told. The comment of each field names
// its environment variable; its default is in [Default].
type Config struct {
	// Addr is the listen address (HERALD_ADDR).
	Addr string
	// DataDir holds the embedded store and generated secrets (HERALD_DATA_DIR).
	DataDir string
	// RedisURL, when set, makes the node join a cluster through Redis
	// instead of the embedded broker and store (HERALD_REDIS_URL).
	RedisURL string
	// RedisSharded uses sharded pub/sub with HERALD_REDIS_URL or a Sentinel
	// set (HERALD_REDIS_SHARDED); a Cluster always uses it.
	RedisSharded bool
	// RedisClusterAddrs are seed host:port of a Redis Cluster, instead of
	// RedisURL (HERALD_REDIS_CLUSTER_ADDRS).
	RedisClusterAddrs []string
	// RedisSentinelAddrs are the host:port of the Sentinels watching the
	// primary named RedisSentinelMaster, instead of RedisURL
	// (HERALD_REDIS_SENTINEL_ADDRS, HERALD_REDIS_SENTINEL_MASTER).
	RedisSentinelAddrs  []string
	RedisSentinelMaster string
	// RedisSentinelUsername and RedisSentinelPassword authenticate to the
	// Sentinels themselves (HERALD_REDIS_SENTINEL_USERNAME,
	// HERALD_REDIS_SENTINEL_PASSWORD); the data servers take RedisUsername
	// and RedisPassword.
	RedisSentinelUsername string
	RedisSentinelPassword string
	// RedisUsername and RedisPassword authenticate to the Redis servers of
	// the cluster or sentinel form; RedisTLS connects to them over TLS
	// (HERALD_REDIS_USERNAME, HERALD_REDIS_PASSWORD, HERALD_REDIS_TLS). The
	// URL form carries its own.
	RedisUsername string
	RedisPassword string
	RedisTLS      bool
	// RedisMinReplicas is how many replicas must acknowledge a
	// notification's history append before it is accepted, counted among
	// the replicas connected to its primary, so a Redis without replicas
	// needs none; 0 accepts what the primary alone has
	// (HERALD_REDIS_MIN_REPLICAS).
	RedisMinReplicas int
	// RedisReplicaTimeout bounds the wait for those replicas; past it the
	// send answers 503 and the sender retries (HERALD_REDIS_REPLICA_TIMEOUT).
	RedisReplicaTimeout time.Duration
	// NodeID names this node in presence and logs; random when empty
	// (HERALD_NODE_ID).
	NodeID string

	// JWTSecret verifies HS256 user tokens (HERALD_JWT_SECRET).
	JWTSecret string
	// JWKSURL publishes the keys of RS256/ES256 user tokens (HERALD_JWKS_URL).
	JWKSURL string
	// APIKey authenticates the server-to-server API (HERALD_API_KEY).
	APIKey string
	// AllowedOrigins may open WS/SSE from a browser; "*" allows any
	// (HERALD_ALLOWED_ORIGINS).
	AllowedOrigins []string
	// AckTimeout is how long live delivery waits for an ack before push
	// fallback (HERALD_ACK_TIMEOUT).
	AckTimeout time.Duration

	// Provider webhook credentials: HERALD_TALKJS_SECRET,
	// HERALD_NOTIFLY_SECRET, HERALD_AMITY_SECRET, HERALD_COMETCHAT_USER,
	// HERALD_COMETCHAT_PASSWORD, and HERALD_WEBHOOK_SECRET (whsec_…, for
	// Standard Webhooks on /webhooks/herald).
	TalkJSSecret      string
	NotiflySecret     string
	AmitySecret       string
	CometChatUser     string
	CometChatPassword string
	WebhookSecret     string

	// Web Push identity: HERALD_VAPID_PUBLIC_KEY, HERALD_VAPID_PRIVATE_KEY,
	// HERALD_VAPID_SUBJECT (mailto: or https:).
	VAPIDPublicKey  string
	VAPIDPrivateKey string
	VAPIDSubject    string
	// FCMCredentials is the path of a service-account JSON
	// (HERALD_FCM_CREDENTIALS); FCMEndpoint overrides the FCM base URL, for
	// tests (HERALD_FCM_ENDPOINT).
	FCMCredentials string
	FCMEndpoint    string
	// APNs token auth: HERALD_APNS_KEY_FILE (.p8), HERALD_APNS_KEY_ID,
	// HERALD_APNS_TEAM_ID, HERALD_APNS_TOPIC (bundle id), HERALD_APNS_ENV
	// (production or sandbox); HERALD_APNS_HOST overrides the host, for tests.
	APNsKeyFile string
	APNsKeyID   string
	APNsTeamID  string
	APNsTopic   string
	APNsEnv     string
	APNsHost    string
	// APNsCertFile and APNsCertPassword authenticate APNs with a .p12
	// certificate instead of a .p8 key (HERALD_APNS_CERT_FILE,
	// HERALD_APNS_CERT_PASSWORD).
	APNsCertFile     string
	APNsCertPassword string
	// PushEnabled is the master push switch (HERALD_PUSH_ENABLED).
	PushEnabled bool
	// PushWebhookURL receives every push as a signed Standard Webhooks
	// POST, the "custom provider" (HERALD_PUSH_WEBHOOK_URL), signed with
	// PushWebhookSecret, a whsec_ secret (HERALD_PUSH_WEBHOOK_SECRET).
	PushWebhookURL    string
	PushWebhookSecret string
	// Credentials holds several credentials per platform, each labelled,
	// exactly one active (herald.yaml only; see Credential). When a
	// platform has none here, the single-credential settings above apply.
	Credentials map[string][]Credential
	// PushAllowPrivate lists hosts and CIDRs that push endpoints may point
	// to although they are private or loopback; for tests
	// (HERALD_PUSH_ALLOW_PRIVATE).
	PushAllowPrivate []string

	// HistoryMaxCount and HistoryMaxAge bound each user's history
	// (HERALD_HISTORY_MAX_COUNT, HERALD_HISTORY_MAX_AGE).
	HistoryMaxCount int
	HistoryMaxAge   time.Duration
	// ShutdownTimeout bounds a graceful shutdown (HERALD_SHUTDOWN_TIMEOUT).
	ShutdownTimeout time.Duration
	// WSReadLimit is the largest WebSocket frame a client may send, in
	// bytes (HERALD_WS_READ_LIMIT).
	WSReadLimit int64
	// WriteTimeout is the deadline of one write to a client
	// (HERALD_WRITE_TIMEOUT).
	WriteTimeout time.Duration
	// PingInterval paces WebSocket pings and SSE heartbeats
	// (HERALD_PING_INTERVAL).
	PingInterval time.Duration
	// SessionQueue is how many frames a client may fall behind before it
	// is cut off as a slow consumer (HERALD_SESSION_QUEUE).
	SessionQueue int
	// SessionQueueBytes bounds the same queue in bytes: a client behind by
	// this much is cut off too (HERALD_SESSION_QUEUE_BYTES).
	SessionQueueBytes int
	// ReadTimeout bounds reading a non-streaming request's body; a client
	// slower than that gets 408 (HERALD_READ_TIMEOUT).
	ReadTimeout time.Duration
	// MaxConnsPerIP caps the concurrent connections of one client address;
	// 0 turns the cap off (HERALD_MAX_CONNS_PER_IP).
	MaxConnsPerIP int
	// TrustedProxies are the addresses or CIDR prefixes of reverse proxies
	// whose X-Forwarded-For is believed (HERALD_TRUSTED_PROXIES).
	TrustedProxies []string
	// PresenceTTL is how long a dead node's sessions stay visible, in Redis
	// mode (HERALD_PRESENCE_TTL).
	PresenceTTL time.Duration
	// AckRate and AckBurst limit the notification ids one user may ack,
	// over POST /v1/ack and WebSocket ack frames together: AckBurst at
	// once, AckRate per second after that (HERALD_ACK_RATE,
	// HERALD_ACK_BURST). An AckRate of 0 turns the limit off.
	AckRate  int
	AckBurst int
	// MarkRate and MarkBurst limit one user's POST /v1/read, /seen and
	// /dismiss requests (HERALD_MARK_RATE, HERALD_MARK_BURST): each folds
	// the user's history and publishes twice. 0 turns the limit off; the
	// server API (API key) is not limited.
	MarkRate  int
	MarkBurst int
	// MaxSessionsPerUser caps one user's live sessions on a node; a new one
	// beyond it closes the user's oldest (WebSocket close code 4008, SSE:
	// the stream ends). 0 turns the cap off (HERALD_MAX_SESSIONS_PER_USER).
	MaxSessionsPerUser int
	// MaxDevicesPerUser caps one user's push devices; a registration beyond
	// it answers 409 too_many_devices. 0 turns the cap off
	// (HERALD_MAX_DEVICES_PER_USER).
	MaxDevicesPerUser int

	// LogLevel is debug, info, warn or error (HERALD_LOG_LEVEL).
	LogLevel string
	// LogFormat is text or json (HERALD_LOG_FORMAT).
	LogFormat string
	// WebhooksEnabled is the master switch of webhook notifications
	// (HERALD_WEBHOOKS_ENABLED); off, webhooks are still verified and
	// answered but notify no one.
	WebhooksEnabled bool
	// WebhookMaxBody bounds a webhook body in bytes (HERALD_WEBHOOK_MAX_BODY).
	WebhookMaxBody int64
	// WebhookWorkers process queued webhooks on this node
	// (HERALD_WEBHOOK_WORKERS).
	WebhookWorkers int
	// WebhookMaxAttempts is how often a queued webhook is tried before it
	// goes to the dead letters (HERALD_WEBHOOK_MAX_ATTEMPTS), and
	// WebhookRetryAfter how long a failed or abandoned one waits
	// (HERALD_WEBHOOK_RETRY_AFTER).
	WebhookMaxAttempts int
	WebhookRetryAfter  time.Duration
	// WebhookDedupeTTL is how long a provider's event id is remembered, to
	// cover its retries (HERALD_WEBHOOK_DEDUPE_TTL).
	WebhookDedupeTTL time.Duration
	// WebhookQueuePartitions is how many streams the Redis webhook queue is
	// spread over (HERALD_WEBHOOK_QUEUE_PARTITIONS, 1 to
	// MaxWebhookQueuePartitions): on a Redis Cluster their slots lie on
	// different primaries, so ingest is not all on one. 1 is the single
	// stream of earlier versions. The embedded queue ignores it.
	WebhookQueuePartitions int
	// ThrottleWindow collapses a burst of messages in one conversation to
	// one user into one popup; 0 turns it off (HERALD_THROTTLE_WINDOW).
	ThrottleWindow time.Duration
	// StreamSecret and SendbirdToken sign Stream Chat and Sendbird
	// webhooks (HERALD_STREAM_SECRET, HERALD_SENDBIRD_TOKEN).
	StreamSecret  string
	SendbirdToken string
	// Events switches webhook event types off, by provider then type
	// (herald.yaml only: events: {talkjs: {message.updated: false}}).
	Events map[string]map[string]bool
	// Templates render notifications per event and locale (herald.yaml
	// only: templates: {message: {default: {title: …, body: …}, fr: …}}).
	Templates map[string]map[string]Template

	// Demo serves the demo page's development helpers (HERALD_DEMO).
	Demo bool
	// PprofAddr, when set, serves net/http/pprof on its own listener, e.g.
	// 127.0.0.1:6060 (HERALD_PPROF_ADDR). Off by default: profiles reveal
	// internals and cost CPU.
	PprofAddr string
	// Metrics serves GET /metrics (HERALD_METRICS).
	Metrics bool
	// MetricsAddr, when set, serves /metrics on a listener of its own
	// instead of the public one, e.g. 127.0.0.1:9090 (HERALD_METRICS_ADDR).
	MetricsAddr string

	// set records the keys a flag, variable or the file gave a value,
	// so that a default can be told from an explicit choice of the same
	// value (an explicit demo=false beats zero-config's demo mode).
	set map[string]bool
}

// Given reports whether the setting key (snake_case, as in herald.yaml)
// was set by a flag, an environment variable or the config file, rather
// than left at its default.
func (c *Config) Given(key string) bool { return c.set[key] }

func (c *Config) given(key string) {
	if c.set == nil {
		c.set = map[string]bool{}
	}
	c.set[key] = true
}

// Default returns the configuration of a zero-config node. It is the only
// place defaults are written.
func Default() *Config {
	return &Config{
		Addr:                ":8080",
		DataDir:             "./data",
		AckTimeout:          5 * time.Second,
		APNsEnv:             "production",
		HistoryMaxCount:     1000,
		HistoryMaxAge:       7 * 24 * time.Hour,
		ShutdownTimeout:     15 * time.Second,
		WSReadLimit:         4096,
		WriteTimeout:        10 * time.Second,
		PingInterval:        25 * time.Second,
		SessionQueue:        256,
		SessionQueueBytes:   1 << 20,
		PresenceTTL:         15 * time.Second,
		ReadTimeout:         10 * time.Second,
		MaxConnsPerIP:       1024,
		AckRate:             200,
		AckBurst:            2000,
		MarkRate:            20,
		MarkBurst:           100,
		RedisMinReplicas:    1,
		RedisReplicaTimeout: time.Second,

		MaxSessionsPerUser: 100,
		MaxDevicesPerUser:  20,
		LogLevel:           "info",
		LogFormat:          "text",
		Metrics:            true,

		PushEnabled:            true,
		WebhooksEnabled:        true,
		WebhookMaxBody:         1 << 20,
		WebhookWorkers:         4,
		WebhookMaxAttempts:     5,
		WebhookRetryAfter:      30 * time.Second,
		WebhookDedupeTTL:       24 * time.Hour,
		WebhookQueuePartitions: 8,
		ThrottleWindow:         10 * time.Second,
	}
}

// Credential is one labelled push credential in herald.yaml:
//
//	credentials:
//	  apns:
//	    - {label: staging, active: false, key_file: …, key_id: …, team_id: …, topic: …, env: sandbox}
//	    - {label: production, active: true, cert_file: app.p12, cert_password: …, topic: …}
//	  fcm:
//	    - {label: production, active: true, credentials_file: sa.json}
//	  webpush:
//	    - {label: production, active: true, public_key: …, private_key: …, subject: mailto:…}
type Credential struct {
	Label  string `yaml:"label"`
	Active bool   `yaml:"active"`
	// Web Push
	PublicKey  string `yaml:"public_key"`
	PrivateKey string `yaml:"private_key"`
	Subject    string `yaml:"subject"`
	// FCM
	CredentialsFile string `yaml:"credentials_file"`
	Endpoint        string `yaml:"endpoint"`
	// APNs
	KeyFile      string `yaml:"key_file"`
	KeyID        string `yaml:"key_id"`
	TeamID       string `yaml:"team_id"`
	CertFile     string `yaml:"cert_file"`
	CertPassword string `yaml:"cert_password"`
	Topic        string `yaml:"topic"`
	Env          string `yaml:"env"`
	Host         string `yaml:"host"`
}

// Template is one notification template: text/template sources for the
// title, body and url; an empty one keeps the default.
type Template struct {
	Title string `yaml:"title"`
	Body  string `yaml:"body"`
	URL   string `yaml:"url"`
}
