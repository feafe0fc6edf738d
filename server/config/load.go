package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// setting binds one configuration name to its field.
type setting struct {
	name   string // snake case: YAML key; env and flag names derive from it
	help   string
	secret bool
	set    func(string) error
	get    func() string
}

func (s setting) env() string  { return "HERALD_" + strings.ToUpper(s.name) }
func (s setting) flag() string { return strings.ReplaceAll(s.name, "_", "-") }

func str(name, help string, p *string) setting {
	return setting{name: name, help: help, set: func(v string) error { *p = v; return nil }, get: func() string { return *p }}
}

func secret(name, help string, p *string) setting {
	s := str(name, help, p)
	s.secret = true
	return s
}

func dur(name, help string, p *time.Duration) setting {
	return setting{name: name, help: help,
		set: func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("not a duration (e.g. 5s, 10m): %q", v)
			}
			*p = d
			return nil
		},
		get: func() string { return p.String() }}
}

func integer[T int | int64](name, help string, p *T) setting {
	return setting{name: name, help: help,
		set: func(v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("not an integer: %q", v)
			}
			*p = T(n)
			return nil
		},
		get: func() string { return strconv.FormatInt(int64(*p), 10) }}
}

func boolean(name, help string, p *bool) setting {
	return setting{name: name, help: help,
		set: func(v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("not a boolean: %q", v)
			}
			*p = b
			return nil
		},
		get: func() string { return strconv.FormatBool(*p) }}
}

func list(name, help string, p *[]string) setting {
	return setting{name: name, help: help,
		set: func(v string) error {
			*p = nil
			for _, item := range strings.Split(v, ",") {
				if item = strings.TrimSpace(item); item != "" {
					*p = append(*p, item)
				}
			}
			return nil
		},
		get: func() string { return strings.Join(*p, ",") }}
}

// settings lists every setting of c, in the order of the usage text.
func settings(c *Config) []setting {
	return []setting{
		str("addr", "listen address", &c.Addr),
		str("data_dir", "embedded store directory", &c.DataDir),
		secret("redis_url", "redis://… to join a cluster through Redis", &c.RedisURL),
		boolean("redis_sharded", "use sharded pub/sub (Redis Cluster)", &c.RedisSharded),
		str("node_id", "node name in logs and presence (random when empty)", &c.NodeID),
		secret("jwt_secret", "HS256 secret for user tokens", &c.JWTSecret),
		str("jwks_url", "JWKS URL for RS256/ES256 user tokens", &c.JWKSURL),
		secret("api_key", "bearer key for the server API", &c.APIKey),
		list("allowed_origins", "origins allowed to open WS/SSE from a browser (comma list, * for any)", &c.AllowedOrigins),
		dur("ack_timeout", "wait for an ack before push fallback", &c.AckTimeout),
		secret("talkjs_secret", "TalkJS webhook signing secret", &c.TalkJSSecret),
		secret("notifly_secret", "Notifly webhook signing secret", &c.NotiflySecret),
		secret("amity_secret", "Amity webhook signing secret", &c.AmitySecret),
		str("cometchat_user", "CometChat webhook Basic auth user", &c.CometChatUser),
		secret("cometchat_password", "CometChat webhook Basic auth password", &c.CometChatPassword),
		secret("webhook_secret", "whsec_… secret for Standard Webhooks", &c.WebhookSecret),
		str("vapid_public_key", "Web Push VAPID public key", &c.VAPIDPublicKey),
		secret("vapid_private_key", "Web Push VAPID private key", &c.VAPIDPrivateKey),
		str("vapid_subject", "Web Push VAPID subject (mailto: or https:)", &c.VAPIDSubject),
		str("fcm_credentials", "path to an FCM service-account JSON", &c.FCMCredentials),
		str("fcm_endpoint", "FCM base URL override (tests)", &c.FCMEndpoint),
		str("apns_key_file", "APNs .p8 key file", &c.APNsKeyFile),
		str("apns_key_id", "APNs key id", &c.APNsKeyID),
		str("apns_team_id", "APNs team id", &c.APNsTeamID),
		str("apns_topic", "APNs topic (bundle id)", &c.APNsTopic),
		str("apns_env", "APNs environment: production or sandbox", &c.APNsEnv),
		str("apns_host", "APNs host override (tests)", &c.APNsHost),
		list("push_allow_private", "hosts/CIDRs push endpoints may use despite being private (tests)", &c.PushAllowPrivate),
		integer("history_max_count", "notifications kept per user", &c.HistoryMaxCount),
		dur("history_max_age", "how long notifications are kept", &c.HistoryMaxAge),
		dur("shutdown_timeout", "graceful shutdown bound", &c.ShutdownTimeout),
		integer("ws_read_limit", "largest client WebSocket frame in bytes", &c.WSReadLimit),
		dur("write_timeout", "deadline for one write to a client", &c.WriteTimeout),
		dur("ping_interval", "WebSocket ping and SSE heartbeat interval", &c.PingInterval),
		integer("session_queue", "frames a client may fall behind before it is cut off", &c.SessionQueue),
		dur("presence_ttl", "how long a dead node's sessions stay visible (Redis mode)", &c.PresenceTTL),
		str("log_level", "debug, info, warn or error", &c.LogLevel),
		str("log_format", "text or json", &c.LogFormat),
		boolean("demo", "serve the demo page and its development token endpoint", &c.Demo),
	}
}

// Load builds the configuration from args (flags), the environment as seen
// through lookupEnv, and a YAML file (--config, HERALD_CONFIG, or
// ./herald.yaml when present), over the defaults.
func Load(args []string, lookupEnv func(string) (string, bool)) (*Config, error) {
	c := Default()
	all := settings(c)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), Usage()) }
	configPath := fs.String("config", "", "path to herald.yaml")
	flagValues := map[string]*string{}
	for _, s := range all {
		v := new(string)
		flagValues[s.name] = v
		fs.Func(s.flag(), s.help, func(x string) error { *v = x; return nil })
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	path, explicit := *configPath, *configPath != ""
	if !explicit {
		if v, ok := lookupEnv("HERALD_CONFIG"); ok && v != "" {
			path, explicit = v, true
		} else {
			path = "herald.yaml"
		}
	}
	if err := loadYAML(c, all, path, explicit); err != nil {
		return nil, err
	}
	var errs []error
	for _, s := range all {
		if v, ok := lookupEnv(s.env()); ok && !set[s.flag()] {
			if err := s.set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.env(), err))
			}
		}
		if set[s.flag()] {
			if err := s.set(*flagValues[s.name]); err != nil {
				errs = append(errs, fmt.Errorf("--%s: %w", s.flag(), err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// loadYAML applies the file at path; a missing file is an error only when
// it was named explicitly. Unknown keys are errors.
func loadYAML(c *Config, all []setting, path string, explicit bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("config file: %w", err)
	}
	var doc map[string]yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	byName := map[string]setting{}
	for _, s := range all {
		byName[s.name] = s
	}
	var errs []error
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		node := doc[k]
		s, ok := byName[k]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: unknown key %q", path, k))
			continue
		}
		var v string
		switch node.Kind {
		case yaml.ScalarNode:
			v = node.Value
		case yaml.SequenceNode:
			var items []string
			if err := node.Decode(&items); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %w", path, k, err))
				continue
			}
			v = strings.Join(items, ",")
		default:
			errs = append(errs, fmt.Errorf("%s: %s: expected a value or a list", path, k))
			continue
		}
		if err := s.set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", path, k, err))
		}
	}
	return errors.Join(errs...)
}

// Usage describes every setting with its environment name and default.
func Usage() string {
	var b strings.Builder
	b.WriteString("Usage: herald serve [flags]\n\nEvery setting is a flag, a HERALD_* variable, or a herald.yaml key (flag > env > file).\n\n")
	for _, s := range settings(Default()) {
		def := s.get()
		if def != "" && def != "0s" && def != "false" {
			def = " (default " + def + ")"
		} else {
			def = ""
		}
		fmt.Fprintf(&b, "  --%-22s %-28s %s%s\n", s.flag(), s.env(), s.help, def)
	}
	b.WriteString("  --config                 HERALD_CONFIG                path to herald.yaml (default ./herald.yaml)\n")
	return b.String()
}
