package config

import (
	"strings"
	"testing"
	"time"
)

// valid returns the defaults plus the secrets a zero-config node generates.
func valid() *Config {
	c := Default()
	c.JWTSecret = "0123456789abcdef0123456789abcdef"
	c.APIKey = "hk_0123456789"
	return c
}

func TestValidateAcceptsGoodConfigs(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
	}{
		{"zero config with generated secrets", func(*Config) {}},
		{"JWKS instead of a secret", func(c *Config) { c.JWTSecret, c.JWKSURL = "", "https://auth.example/.well-known/jwks.json" }},
		{"Redis mode without a data dir", func(c *Config) { c.RedisURL, c.DataDir = "redis://:pw@redis:6379/0", "" }},
		{"Redis over TLS", func(c *Config) { c.RedisURL = "rediss://redis.example:6380" }},
		{"Redis over a socket", func(c *Config) { c.RedisURL = "unix:///run/redis.sock" }},
		{"Redis Cluster without a data dir", func(c *Config) {
			c.RedisClusterAddrs, c.DataDir = []string{"10.0.0.1:6379", "redis-2:6379", "[::1]:7000"}, ""
			c.RedisUsername, c.RedisPassword, c.RedisTLS = "herald", "pw", true
		}},
		{"Redis Cluster with sharded pub/sub (always on there)", func(c *Config) {
			c.RedisClusterAddrs, c.RedisSharded = []string{"10.0.0.1:6379"}, true
		}},
		{"Redis Sentinel", func(c *Config) {
			c.RedisSentinelAddrs, c.RedisSentinelMaster, c.DataDir = []string{"s1:26379", "s2:26379"}, "mymaster", ""
			c.RedisPassword = "pw"
		}},
		{"listen on a host", func(c *Config) { c.Addr = "127.0.0.1:9000" }},
		{"origins", func(c *Config) {
			c.AllowedOrigins = []string{"https://app.example.com", "http://localhost:3000", "https://x.example/", "*"}
		}},
		{"node id", func(c *Config) { c.NodeID = "node-1.eu:a_b" }},
		{"CometChat credentials", func(c *Config) { c.CometChatUser, c.CometChatPassword = "cc", "pw" }},
		{"Standard Webhooks secret", func(c *Config) { c.WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }},
		{"VAPID identity", func(c *Config) {
			c.VAPIDPublicKey, c.VAPIDPrivateKey, c.VAPIDSubject = "BPub", "priv", "mailto:ops@example.com"
		}},
		{"VAPID https subject", func(c *Config) { c.VAPIDSubject = "https://example.com" }},
		{"APNs complete", func(c *Config) {
			c.APNsKeyFile, c.APNsKeyID, c.APNsTeamID, c.APNsTopic, c.APNsEnv = "/k.p8", "KID", "TEAM", "com.example", "sandbox"
		}},
		{"APNs and FCM test hosts", func(c *Config) { c.APNsHost, c.FCMEndpoint = "https://127.0.0.1:8443", "http://127.0.0.1:9000" }},
		{"private push hosts", func(c *Config) {
			c.PushAllowPrivate = []string{"127.0.0.1", "::1", "10.0.0.0/8", "localhost", "push.internal"}
		}},
		{"log settings", func(c *Config) { c.LogLevel, c.LogFormat = "DEBUG", "json" }},
		{"read limit bounds", func(c *Config) { c.WSReadLimit = MinWSReadLimit }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(c)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string // the line expected in the error
	}{
		{"empty addr", func(c *Config) { c.Addr = "" }, "HERALD_ADDR: must not be empty"},
		{"addr without port", func(c *Config) { c.Addr = "localhost" }, "HERALD_ADDR: must be host:port"},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "HERALD_DATA_DIR: must not be empty"},
		{"Redis URL scheme", func(c *Config) { c.RedisURL = "http://redis:6379" }, "HERALD_REDIS_URL: must be a URL starting with redis://"},
		{"Redis URL unparsable", func(c *Config) { c.RedisURL = "redis://[::1" }, "HERALD_REDIS_URL: is not a URL"},
		{"URL and cluster", func(c *Config) { c.RedisURL, c.RedisClusterAddrs = "redis://r:6379", []string{"r:7000"} },
			"HERALD_REDIS_CLUSTER_ADDRS: Redis is given more than one way (HERALD_REDIS_URL, HERALD_REDIS_CLUSTER_ADDRS); set exactly one"},
		{"cluster and sentinel", func(c *Config) {
			c.RedisClusterAddrs, c.RedisSentinelAddrs, c.RedisSentinelMaster = []string{"r:7000"}, []string{"s:26379"}, "m"
		}, "HERALD_REDIS_SENTINEL_ADDRS: Redis is given more than one way (HERALD_REDIS_CLUSTER_ADDRS, HERALD_REDIS_SENTINEL_ADDRS); set exactly one"},
		{"cluster address", func(c *Config) { c.RedisClusterAddrs = []string{"r:7000", "r7001"} }, `HERALD_REDIS_CLUSTER_ADDRS: "r7001" is not host:port`},
		{"sentinel without master", func(c *Config) { c.RedisSentinelAddrs = []string{"s:26379"} }, "HERALD_REDIS_SENTINEL_MASTER: is required with HERALD_REDIS_SENTINEL_ADDRS"},
		{"master without sentinels", func(c *Config) { c.RedisSentinelMaster = "m" }, "HERALD_REDIS_SENTINEL_MASTER: goes with HERALD_REDIS_SENTINEL_ADDRS"},
		{"password with the URL", func(c *Config) { c.RedisURL, c.RedisPassword = "redis://r:6379", "pw" }, "HERALD_REDIS_PASSWORD: goes with HERALD_REDIS_CLUSTER_ADDRS or HERALD_REDIS_SENTINEL_ADDRS"},
		{"TLS without Redis", func(c *Config) { c.RedisTLS = true }, "HERALD_REDIS_TLS: goes with"},
		{"sentinel password without sentinels", func(c *Config) { c.RedisSentinelPassword = "pw" }, "HERALD_REDIS_SENTINEL_PASSWORD: goes with HERALD_REDIS_SENTINEL_ADDRS"},
		{"negative min replicas", func(c *Config) { c.RedisMinReplicas = -1 }, "HERALD_REDIS_MIN_REPLICAS: must not be negative"},
		{"replica timeout past the read deadline", func(c *Config) { c.RedisReplicaTimeout = 5 * time.Second }, "HERALD_REDIS_REPLICA_TIMEOUT: must be positive and at most 2s"},
		{"node id", func(c *Config) { c.NodeID = "node 1" }, "HERALD_NODE_ID:"},
		{"node id length", func(c *Config) { c.NodeID = strings.Repeat("n", 65) }, "HERALD_NODE_ID:"},
		{"no token key", func(c *Config) { c.JWTSecret = "" }, "HERALD_JWT_SECRET: a JWT secret or HERALD_JWKS_URL is required"},
		{"short secret", func(c *Config) { c.JWTSecret = "short" }, "HERALD_JWT_SECRET: must be at least 16 bytes"},
		{"JWKS URL", func(c *Config) { c.JWKSURL = "jwks.json" }, "HERALD_JWKS_URL: must be a URL starting with https://"},
		{"no API key", func(c *Config) { c.APIKey = "" }, "HERALD_API_KEY: is required"},
		{"negative ack rate", func(c *Config) { c.AckRate = -1 }, "HERALD_ACK_RATE: must not be negative"},
		{"no ack burst", func(c *Config) { c.AckBurst = 0 }, "HERALD_ACK_BURST: must be positive"},
		{"negative session cap", func(c *Config) { c.MaxSessionsPerUser = -1 }, "HERALD_MAX_SESSIONS_PER_USER: must not be negative"},
		{"negative device cap", func(c *Config) { c.MaxDevicesPerUser = -5 }, "HERALD_MAX_DEVICES_PER_USER: must not be negative"},
		{"origin without scheme", func(c *Config) { c.AllowedOrigins = []string{"example.com"} }, `HERALD_ALLOWED_ORIGINS: "example.com" is not an origin`},
		{"origin with a path", func(c *Config) { c.AllowedOrigins = []string{"https://a.example/app"} }, "HERALD_ALLOWED_ORIGINS:"},
		{"origin of another scheme", func(c *Config) { c.AllowedOrigins = []string{"ftp://a.example"} }, "HERALD_ALLOWED_ORIGINS:"},
		{"CometChat user alone", func(c *Config) { c.CometChatUser = "cc" }, "HERALD_COMETCHAT_PASSWORD:"},
		{"CometChat password alone", func(c *Config) { c.CometChatPassword = "pw" }, "HERALD_COMETCHAT_PASSWORD:"},
		{"webhook secret prefix", func(c *Config) { c.WebhookSecret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }, "HERALD_WEBHOOK_SECRET: must be whsec_"},
		{"webhook secret base64", func(c *Config) { c.WebhookSecret = "whsec_not base64!" }, "HERALD_WEBHOOK_SECRET:"},
		{"VAPID half", func(c *Config) { c.VAPIDPublicKey = "BPub" }, "HERALD_VAPID_PRIVATE_KEY:"},
		{"VAPID subject", func(c *Config) { c.VAPIDSubject = "ops@example.com" }, "HERALD_VAPID_SUBJECT: must start with mailto: or https://"},
		{"FCM endpoint", func(c *Config) { c.FCMEndpoint = "fcm.local" }, "HERALD_FCM_ENDPOINT:"},
		{"APNs incomplete", func(c *Config) { c.APNsKeyFile = "/k.p8" }, "HERALD_APNS_TEAM_ID: is required"},
		{"APNs env", func(c *Config) { c.APNsEnv = "staging" }, "HERALD_APNS_ENV: must be production or sandbox"},
		{"APNs host", func(c *Config) { c.APNsHost = "api.push.apple.com" }, "HERALD_APNS_HOST:"},
		{"private push host", func(c *Config) { c.PushAllowPrivate = []string{"https://10.0.0.1"} }, `HERALD_PUSH_ALLOW_PRIVATE: "https://10.0.0.1"`},
		{"history count", func(c *Config) { c.HistoryMaxCount = 0 }, "HERALD_HISTORY_MAX_COUNT: must be positive"},
		{"no queue partition", func(c *Config) { c.WebhookQueuePartitions = 0 }, "HERALD_WEBHOOK_QUEUE_PARTITIONS: must be between 1 and 256"},
		{"too many queue partitions", func(c *Config) { c.WebhookQueuePartitions = 257 }, "HERALD_WEBHOOK_QUEUE_PARTITIONS: must be between 1 and 256"},
		{"ack timeout", func(c *Config) { c.AckTimeout = 0 }, "HERALD_ACK_TIMEOUT: must be positive"},
		{"history age", func(c *Config) { c.HistoryMaxAge = -time.Hour }, "HERALD_HISTORY_MAX_AGE: must be positive"},
		{"shutdown timeout", func(c *Config) { c.ShutdownTimeout = 0 }, "HERALD_SHUTDOWN_TIMEOUT: must be positive"},
		{"write timeout", func(c *Config) { c.WriteTimeout = 0 }, "HERALD_WRITE_TIMEOUT: must be positive"},
		{"ping interval", func(c *Config) { c.PingInterval = 0 }, "HERALD_PING_INTERVAL: must be positive"},
		{"presence TTL", func(c *Config) { c.PresenceTTL = 0 }, "HERALD_PRESENCE_TTL: must be positive"},
		{"read limit small", func(c *Config) { c.WSReadLimit = 64 }, "HERALD_WS_READ_LIMIT:"},
		{"read limit large", func(c *Config) { c.WSReadLimit = MaxWSReadLimit + 1 }, "HERALD_WS_READ_LIMIT:"},
		{"session queue", func(c *Config) { c.SessionQueue = -1 }, "HERALD_SESSION_QUEUE: must be positive"},
		{"session queue bytes", func(c *Config) { c.SessionQueueBytes = 100 }, "HERALD_SESSION_QUEUE_BYTES: must be at least 4096"},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, "HERALD_LOG_LEVEL:"},
		{"log format", func(c *Config) { c.LogFormat = "xml" }, "HERALD_LOG_FORMAT: must be text or json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	c := Default() // no secrets yet
	c.AckTimeout = 0
	c.SessionQueue = 0
	c.AllowedOrigins = []string{"example.com"}
	c.LogFormat = "xml"
	c.RedisURL = "http://redis"
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted it")
	}
	want := []string{
		"HERALD_REDIS_URL", "HERALD_JWT_SECRET", "HERALD_API_KEY", "HERALD_ALLOWED_ORIGINS",
		"HERALD_ACK_TIMEOUT", "HERALD_SESSION_QUEUE", "HERALD_LOG_FORMAT",
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Errorf("%d problems reported, want %d:\n%v", len(lines), len(want), err)
	}
	for _, name := range want {
		if !strings.Contains(err.Error(), name+": ") {
			t.Errorf("%s not reported in:\n%v", name, err)
		}
	}
	for _, line := range lines {
		if !strings.HasPrefix(line, "HERALD_") {
			t.Errorf("line %q does not start with the variable's name", line)
		}
	}
}

func TestValidateDoesNotRepeatSecrets(t *testing.T) {
	c := valid()
	c.RedisURL = "http://user:hunter2-pw@redis"
	c.JWTSecret = "hunter2"
	c.WebhookSecret = "hunter2-webhook"
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted it")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error repeats a secret: %v", err)
	}
}

func TestCredentialsNeedExactlyOneActive(t *testing.T) {
	cases := []struct {
		name  string
		creds map[string][]Credential
		want  string
	}{
		{"two active", map[string][]Credential{"apns": {{Label: "staging", Active: true}, {Label: "production", Active: true}}}, "apns: 2 credentials are active (staging, production)"},
		{"none active", map[string][]Credential{"fcm": {{Label: "staging"}}}, "fcm: no credential is active"},
		{"unknown platform", map[string][]Credential{"pager": {{Label: "x", Active: true}}}, `unknown platform "pager"`},
		{"label twice", map[string][]Credential{"webpush": {{Label: "a", Active: true}, {Label: "a"}}}, `label "a" is used twice`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.JWTSecret, c.APIKey = "0123456789abcdef0123", "key"
			c.Credentials = tc.creds
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
	c := Default()
	c.JWTSecret, c.APIKey = "0123456789abcdef0123", "key"
	c.Credentials = map[string][]Credential{"apns": {{Label: "staging"}, {Label: "production", Active: true}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
