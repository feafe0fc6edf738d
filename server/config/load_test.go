package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env returns a lookupEnv reading m.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// yamlFile writes content to a herald.yaml in a fresh directory.
func yamlFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// load runs NewFlagSet and FromFlags with the flag package's output
// discarded, so failing cases do not print the usage text.
func load(args []string, lookup func(string) (string, bool)) (*Config, error) {
	fset := NewFlagSet("serve")
	fset.SetOutput(io.Discard)
	if err := fset.Parse(args); err != nil {
		return nil, err
	}
	return FromFlags(fset, lookup)
}

func TestLoadPrecedence(t *testing.T) {
	// Each source sets every one of these, of each type, to its own value.
	type values struct {
		addr    string
		ack     time.Duration
		count   int
		demo    bool
		origins []string
	}
	file := values{":7000", 7 * time.Second, 70, true, []string{"https://file.example"}}
	envv := values{":8000", 8 * time.Second, 80, false, []string{"https://env.example"}}
	flags := values{":9000", 9 * time.Second, 90, true, []string{"https://flag.example"}}
	def := values{":8080", 5 * time.Second, 1000, false, nil}

	fileYAML := "addr: \":7000\"\nack_timeout: 7s\nhistory_max_count: 70\ndemo: true\nallowed_origins:\n  - https://file.example\n"
	envMap := map[string]string{
		"HERALD_ADDR": ":8000", "HERALD_ACK_TIMEOUT": "8s", "HERALD_HISTORY_MAX_COUNT": "80",
		"HERALD_DEMO": "false", "HERALD_ALLOWED_ORIGINS": "https://env.example",
	}
	flagArgs := []string{"--addr", ":9000", "--ack-timeout=9s", "--history-max-count", "90", "--demo", "--allowed-origins", "https://flag.example"}

	cases := []struct {
		name            string
		useFile, useEnv bool
		useFlags        bool
		want            values
	}{
		{"defaults alone", false, false, false, def},
		{"file beats default", true, false, false, file},
		{"env beats default", false, true, false, envv},
		{"env beats file", true, true, false, envv},
		{"flag beats default", false, false, true, flags},
		{"flag beats file", true, false, true, flags},
		{"flag beats env and file", true, true, true, flags},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]string{}
			if tc.useEnv {
				for k, v := range envMap {
					m[k] = v
				}
			}
			if tc.useFile {
				m["HERALD_CONFIG"] = yamlFile(t, fileYAML)
			}
			var args []string
			if tc.useFlags {
				args = flagArgs
			}
			c, err := Load(args, env(m))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got := values{c.Addr, c.AckTimeout, c.HistoryMaxCount, c.Demo, c.AllowedOrigins}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if c.DataDir != "./data" || c.PingInterval != 25*time.Second {
				t.Fatalf("settings no source named lost their defaults: %q %v", c.DataDir, c.PingInterval)
			}
		})
	}
}

func TestLoadFindsTheConfigFile(t *testing.T) {
	flagFile := yamlFile(t, "addr: \":1001\"\n")
	envFile := yamlFile(t, "addr: \":1002\"\n")
	cwd := t.TempDir()
	if err := os.WriteFile(filepath.Join(cwd, DefaultFile), []byte("addr: \":1003\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "absent.yaml")

	cases := []struct {
		name     string
		args     []string
		env      map[string]string
		dir      string // working directory; empty: one without herald.yaml
		wantAddr string
		wantErr  bool
	}{
		{name: "--config beats HERALD_CONFIG", args: []string{"--config", flagFile}, env: map[string]string{"HERALD_CONFIG": envFile}, dir: cwd, wantAddr: ":1001"},
		{name: "HERALD_CONFIG beats ./herald.yaml", env: map[string]string{"HERALD_CONFIG": envFile}, dir: cwd, wantAddr: ":1002"},
		{name: "./herald.yaml when present", dir: cwd, wantAddr: ":1003"},
		{name: "no file is fine", wantAddr: ":8080"},
		{name: "empty HERALD_CONFIG is unset", env: map[string]string{"HERALD_CONFIG": ""}, dir: cwd, wantAddr: ":1003"},
		{name: "a named file must exist", args: []string{"--config", missing}, wantErr: true},
		{name: "a file named by env must exist", env: map[string]string{"HERALD_CONFIG": missing}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir
			if dir == "" {
				dir = t.TempDir()
			}
			t.Chdir(dir)
			c, err := load(tc.args, env(tc.env))
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "absent.yaml") {
					t.Fatalf("err = %v, want one naming the missing file", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Addr != tc.wantAddr {
				t.Fatalf("addr = %q, want %q", c.Addr, tc.wantAddr)
			}
		})
	}
}

func TestLoadParsesEachType(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		env   map[string]string
		yaml  string
		check func(*Config) bool
	}{
		{name: "string from env", env: map[string]string{"HERALD_NODE_ID": "node-a"}, check: func(c *Config) bool { return c.NodeID == "node-a" }},
		{name: "string from flag", args: []string{"--data-dir=/var/lib/herald"}, check: func(c *Config) bool { return c.DataDir == "/var/lib/herald" }},
		{name: "string from file", yaml: "apns_topic: com.example.app\n", check: func(c *Config) bool { return c.APNsTopic == "com.example.app" }},
		{name: "number-looking string from file", yaml: "api_key: 12345\n", check: func(c *Config) bool { return c.APIKey == "12345" }},
		{name: "bool true from env", env: map[string]string{"HERALD_REDIS_SHARDED": "true"}, check: func(c *Config) bool { return c.RedisSharded }},
		{name: "bool yes from env", env: map[string]string{"HERALD_DEMO": "YES"}, check: func(c *Config) bool { return c.Demo }},
		{name: "bool 0 from env", env: map[string]string{"HERALD_METRICS": "0"}, check: func(c *Config) bool { return !c.Metrics }},
		{name: "bare bool flag", args: []string{"--redis-sharded"}, check: func(c *Config) bool { return c.RedisSharded }},
		{name: "bool flag set false", args: []string{"--metrics=false"}, check: func(c *Config) bool { return !c.Metrics }},
		{name: "bool from file", yaml: "metrics: off\n", check: func(c *Config) bool { return !c.Metrics }},
		{name: "int from env", env: map[string]string{"HERALD_SESSION_QUEUE": "512"}, check: func(c *Config) bool { return c.SessionQueue == 512 }},
		{name: "int64 from flag", args: []string{"--ws-read-limit", "8192"}, check: func(c *Config) bool { return c.WSReadLimit == 8192 }},
		{name: "int from file", yaml: "history_max_count: 50\n", check: func(c *Config) bool { return c.HistoryMaxCount == 50 }},
		{name: "duration from env", env: map[string]string{"HERALD_WRITE_TIMEOUT": "1m30s"}, check: func(c *Config) bool { return c.WriteTimeout == 90*time.Second }},
		{name: "duration in days", env: map[string]string{"HERALD_HISTORY_MAX_AGE": "30d"}, check: func(c *Config) bool { return c.HistoryMaxAge == 30*24*time.Hour }},
		{name: "duration from flag", args: []string{"--presence-ttl", "45s"}, check: func(c *Config) bool { return c.PresenceTTL == 45*time.Second }},
		{name: "duration from file", yaml: "ping_interval: 10s\n", check: func(c *Config) bool { return c.PingInterval == 10*time.Second }},
		{name: "list from env, blanks dropped", env: map[string]string{"HERALD_ALLOWED_ORIGINS": " https://a.example, ,https://b.example,"}, check: func(c *Config) bool {
			return reflect.DeepEqual(c.AllowedOrigins, []string{"https://a.example", "https://b.example"})
		}},
		{name: "list from flag", args: []string{"--push-allow-private=127.0.0.1,10.0.0.0/8"}, check: func(c *Config) bool {
			return reflect.DeepEqual(c.PushAllowPrivate, []string{"127.0.0.1", "10.0.0.0/8"})
		}},
		{name: "list from YAML list", yaml: "push_allow_private:\n  - localhost\n  - ::1\n", check: func(c *Config) bool {
			return reflect.DeepEqual(c.PushAllowPrivate, []string{"localhost", "::1"})
		}},
		{name: "list from YAML flow list", yaml: "allowed_origins: [\"*\"]\n", check: func(c *Config) bool {
			return reflect.DeepEqual(c.AllowedOrigins, []string{"*"})
		}},
		{name: "list from YAML string", yaml: "allowed_origins: https://a.example,https://b.example\n", check: func(c *Config) bool {
			return reflect.DeepEqual(c.AllowedOrigins, []string{"https://a.example", "https://b.example"})
		}},
		{name: "empty YAML list clears", yaml: "allowed_origins: []\n", check: func(c *Config) bool { return c.AllowedOrigins != nil && len(c.AllowedOrigins) == 0 }},
		{name: "nested mapping", yaml: "history:\n  max_count: 10\n  max_age: 2d\nlog:\n  level: debug\n", check: func(c *Config) bool {
			return c.HistoryMaxCount == 10 && c.HistoryMaxAge == 48*time.Hour && c.LogLevel == "debug"
		}},
		{name: "deeper nesting", yaml: "apns:\n  key:\n    id: K1\n    file: /k.p8\n", check: func(c *Config) bool { return c.APNsKeyID == "K1" && c.APNsKeyFile == "/k.p8" }},
		{name: "YAML alias", yaml: "ack_timeout: &t 3s\nwrite_timeout: *t\n", check: func(c *Config) bool { return c.AckTimeout == 3*time.Second && c.WriteTimeout == 3*time.Second }},
		{name: "key without value keeps the default", yaml: "addr:\nack_timeout: ~\n", check: func(c *Config) bool { return c.Addr == ":8080" && c.AckTimeout == 5*time.Second }},
		{name: "empty env value is unset", env: map[string]string{"HERALD_ADDR": "", "HERALD_ACK_TIMEOUT": ""}, check: func(c *Config) bool { return c.Addr == ":8080" && c.AckTimeout == 5*time.Second }},
		{name: "blank file", yaml: "\n", check: func(c *Config) bool { return c.Addr == ":8080" }},
		{name: "comments only", yaml: "# nothing yet\n", check: func(c *Config) bool { return c.Addr == ":8080" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]string{}
			for k, v := range tc.env {
				m[k] = v
			}
			if tc.yaml != "" {
				m["HERALD_CONFIG"] = yamlFile(t, tc.yaml)
			}
			c, err := load(tc.args, env(m))
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if !tc.check(c) {
				t.Fatalf("unexpected config: %s", c)
			}
		})
	}
}

// TestEverySettingLoadsFromEachSource sets each setting alone, through each
// source, to a value of its type, and reads it back.
func TestEverySettingLoadsFromEachSource(t *testing.T) {
	sample := func(s *setting) string {
		switch s.typeName() {
		case "bool":
			if s.get(Default()) == "true" {
				return "false"
			}
			return "true"
		case "int":
			return "4242"
		case "duration":
			return "42s"
		case "list":
			return "a.example,b.example"
		default:
			return "value-of-" + s.key
		}
	}
	for i := range settings {
		s := &settings[i]
		want := sample(s)
		sources := map[string]func(t *testing.T) (*Config, error){
			"env":  func(*testing.T) (*Config, error) { return load(nil, env(map[string]string{s.env(): want})) },
			"flag": func(*testing.T) (*Config, error) { return load([]string{"--" + s.flag() + "=" + want}, nil) },
			"file": func(t *testing.T) (*Config, error) {
				return load(nil, env(map[string]string{"HERALD_CONFIG": yamlFile(t, s.key+": \""+want+"\"\n")}))
			},
		}
		for name, loadFrom := range sources {
			t.Run(s.key+"/"+name, func(t *testing.T) {
				c, err := loadFrom(t)
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				if got := s.get(c); got != want {
					t.Fatalf("%s = %q, want %q", s.key, got, want)
				}
			})
		}
	}
}

func TestLoadErrorsNameTheirSource(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		yaml string
		want []string
	}{
		{name: "env duration", env: map[string]string{"HERALD_ACK_TIMEOUT": "soon"}, want: []string{`HERALD_ACK_TIMEOUT="soon"`, "not a duration"}},
		{name: "env int", env: map[string]string{"HERALD_HISTORY_MAX_COUNT": "many"}, want: []string{"HERALD_HISTORY_MAX_COUNT", "not an integer"}},
		{name: "env bool", env: map[string]string{"HERALD_DEMO": "maybe"}, want: []string{"HERALD_DEMO", "not a boolean"}},
		{name: "flag int", args: []string{"--session-queue", "x"}, want: []string{"session-queue", "not an integer"}},
		{name: "flag duration", args: []string{"--ack-timeout=5"}, want: []string{"ack-timeout", "not a duration"}},
		{name: "unknown flag", args: []string{"--adr", ":1"}, want: []string{"adr"}},
		{name: "unknown key", yaml: "adr: x\n", want: []string{`herald.yaml:1: unknown key "adr"`, "did you mean addr?"}},
		{name: "unknown key far from any", yaml: "zzzzzzzz: 1\n", want: []string{`unknown key "zzzzzzzz"`}},
		{name: "unknown nested key", yaml: "history:\n  max_cnt: 3\n", want: []string{`herald.yaml:2: unknown key "history.max_cnt"`}},
		{name: "unknown section", yaml: "templatez:\n  en: {}\n", want: []string{`unknown key "templatez"`}},
		{name: "malformed templates", yaml: "templates:\n  message: [1]\n", want: []string{"herald.yaml:2: templates"}},
		{name: "file int", yaml: "history_max_count: lots\n", want: []string{"herald.yaml:1: history_max_count", "not an integer"}},
		{name: "file nested duration", yaml: "history:\n  max_age: forever\n", want: []string{"herald.yaml:2: history.max_age", "not a duration"}},
		{name: "list given to a single value", yaml: "addr: [\":1\", \":2\"]\n", want: []string{"addr: expected a single value"}},
		{name: "mapping given to a value", yaml: "jwt_secret:\n  value: x\n", want: []string{"jwt_secret: expected a value, not a mapping"}},
		{name: "nested list items", yaml: "allowed_origins:\n  - [a]\n", want: []string{"list items must be plain values"}},
		{name: "set twice", yaml: "history_max_count: 1\nhistory:\n  max_count: 2\n", want: []string{"history.max_count: already set on line 1"}},
		{name: "not a mapping", yaml: "- addr\n", want: []string{"expected a mapping of settings"}},
		{name: "bad YAML", yaml: "addr: [\n", want: []string{"herald.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]string{}
			for k, v := range tc.env {
				m[k] = v
			}
			if tc.yaml != "" {
				m["HERALD_CONFIG"] = yamlFile(t, tc.yaml)
			}
			c, err := load(tc.args, env(m))
			if err == nil {
				t.Fatalf("loaded %s, want an error", c)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadReportsEveryMalformedValue(t *testing.T) {
	file := yamlFile(t, "adr: x\nsession_queue: some\n")
	_, err := load(nil, env(map[string]string{
		"HERALD_CONFIG":      file,
		"HERALD_ACK_TIMEOUT": "soon",
		"HERALD_DEMO":        "maybe",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{`unknown key "adr"`, "session_queue", "HERALD_ACK_TIMEOUT", "HERALD_DEMO"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not report %s:\n%v", w, err)
		}
	}
}

func TestLoadArguments(t *testing.T) {
	if _, err := Load([]string{"extra"}, nil); err == nil || !strings.Contains(err.Error(), `unexpected argument "extra"`) {
		t.Fatalf("positional argument: %v", err)
	}
	c, err := Load(nil, nil)
	if err != nil {
		t.Fatalf("nil environment: %v", err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("Load with nothing = %s, want the defaults", c)
	}
}

func TestFlagSetHelp(t *testing.T) {
	fset := NewFlagSet("serve")
	var out bytes.Buffer
	fset.SetOutput(&out)
	if err := fset.Parse([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v, want flag.ErrHelp", err)
	}
	if out.String() != Usage() {
		t.Fatalf("-h printed %q, want the usage text", out.String())
	}
}

func TestFlagSetTakesCommandFlags(t *testing.T) {
	fset := NewFlagSet("serve")
	dryRun := fset.Bool("dry-run", false, "check the configuration and exit")
	if err := fset.Parse([]string{"--dry-run", "--addr", ":1234", "--jwt-secret", "a-secret-of-enough-length"}); err != nil {
		t.Fatal(err)
	}
	c, err := FromFlags(fset, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !*dryRun || c.Addr != ":1234" || c.JWTSecret != "a-secret-of-enough-length" {
		t.Fatalf("dry-run %v, config %s", *dryRun, c)
	}
	if got := fset.Lookup("jwt-secret").Value.String(); got != redacted {
		t.Fatalf("flag value of a secret prints %q", got)
	}
	if got := fset.Lookup("addr").Value.String(); got != ":1234" {
		t.Fatalf("flag value of addr prints %q", got)
	}
}

func TestStructuredSectionsDecode(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/herald.yaml"
	src := "events:\n  talkjs:\n    message.updated: false\ntemplates:\n  message:\n    fr:\n      title: \"{{.SenderName}} a écrit\"\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"--config", path}, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if on, set := c.Events["talkjs"]["message.updated"]; !set || on {
		t.Fatalf("events = %v", c.Events)
	}
	if got := c.Templates["message"]["fr"].Title; got != "{{.SenderName}} a écrit" {
		t.Fatalf("templates = %v", c.Templates)
	}
}

func TestGivenTellsAnExplicitValueFromTheDefault(t *testing.T) {
	file := yamlFile(t, "log_level: debug\nhistory:\n  max_count:\n")
	c, err := load([]string{"--config", file, "--demo=false"}, env(map[string]string{"HERALD_ADDR": ":9090"}))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{
		"demo": true, "addr": true, "log_level": true, // flag, environment, file
		"history_max_count": false, // an empty YAML value leaves the default
		"api_key":           false,
	} {
		if got := c.Given(key); got != want {
			t.Errorf("Given(%q) = %v, want %v", key, got, want)
		}
	}
	if Default().Given("demo") {
		t.Error("the defaults must not count as given")
	}
}
