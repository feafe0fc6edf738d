package config

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultFile is the config file read, from the working directory, when
// neither --config nor HERALD_CONFIG names one and it exists.
const DefaultFile = "herald.yaml"

// The flag and the variable that name the config file.
const (
	configFlag = "config"
	configEnv  = envPrefix + "CONFIG"
)

// Load builds the configuration of "herald serve" from its arguments, the
// environment as seen through lookupEnv (nil reads none), and a YAML file,
// over the defaults. The file is the one named by --config, else by
// HERALD_CONFIG, else ./herald.yaml when it exists. Every malformed value
// is reported, each naming where it came from. A flag error prints the
// usage to stderr, as the flag package does; -h returns flag.ErrHelp.
// Load does not validate: see [Config.Validate].
func Load(args []string, lookupEnv func(string) (string, bool)) (*Config, error) {
	fset := NewFlagSet("serve")
	if err := fset.Parse(args); err != nil {
		return nil, err
	}
	if fset.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fset.Arg(0))
	}
	return FromFlags(fset, lookupEnv)
}

// NewFlagSet returns a flag set holding every setting as a flag, plus
// --config, whose usage prints [Usage]. A command may add flags of its own
// before parsing; after parsing, [FromFlags] builds the configuration.
// Values are checked as they are parsed, so a malformed one fails Parse
// with the flag named.
func NewFlagSet(name string) *flag.FlagSet {
	fset := flag.NewFlagSet(name, flag.ContinueOnError)
	fset.Usage = func() { fmt.Fprint(fset.Output(), Usage()) }
	fset.String(configFlag, "", "path to herald.yaml")
	for i := range settings {
		s := &settings[i]
		fset.Var(&flagValue{s: s}, s.flag(), s.help)
	}
	return fset
}

// FromFlags builds the configuration from a parsed flag set made by
// [NewFlagSet], the environment and the config file, with the precedence
// flag > environment > file > default. See [Load].
func FromFlags(fset *flag.FlagSet, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	c := Default()
	var errs []error

	path, explicit := "", false
	if f := fset.Lookup(configFlag); f != nil && isSet(fset, configFlag) {
		path, explicit = f.Value.String(), true
	} else if v, ok := lookupEnv(configEnv); ok && v != "" {
		path, explicit = v, true
	}
	if !explicit {
		path = DefaultFile
	}
	if err := loadFile(c, path, explicit); err != nil {
		errs = append(errs, err)
	}

	for i := range settings {
		s := &settings[i]
		v, ok := lookupEnv(s.env())
		if !ok || v == "" {
			continue
		}
		c.given(s.key)
		if err := s.set(c, v); err != nil {
			// Only non-string settings fail to parse, and no secret is one
			// (a test holds this), so the value is safe to repeat.
			errs = append(errs, fmt.Errorf("%s=%q: %w", s.env(), v, err))
		}
	}

	fset.Visit(func(f *flag.Flag) {
		fv, ok := f.Value.(*flagValue)
		if !ok {
			return
		}
		c.given(fv.s.key)
		if err := fv.s.set(c, fv.raw); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", fv.s.flag(), err))
		}
	})

	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

func isSet(fset *flag.FlagSet, name string) bool {
	set := false
	fset.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// flagValue is one setting as a flag. It checks the value when parsed and
// keeps it for FromFlags; String hides secrets, since flag users may print
// it.
type flagValue struct {
	s   *setting
	raw string
}

func (f *flagValue) Set(v string) error {
	if err := f.s.set(new(Config), v); err != nil {
		return err
	}
	f.raw = v
	return nil
}

func (f *flagValue) String() string {
	if f == nil || f.s == nil {
		return ""
	}
	if f.s.show != public && f.raw != "" {
		return redacted
	}
	return f.raw
}

// IsBoolFlag lets a boolean setting be given as a bare --demo.
func (f *flagValue) IsBoolFlag() bool { return f != nil && f.s != nil && f.s.isBool() }

// loadFile applies the YAML file at path to c. A missing file is an error
// only when it was named explicitly.
func loadFile(c *Config, path string, explicit bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("config file: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(root.Content) == 0 {
		return nil // empty, or only comments
	}
	doc := root.Content[0]
	if doc.Kind == yaml.ScalarNode && doc.Tag == "!!null" {
		return nil
	}
	if doc.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: expected a mapping of settings", path, doc.Line)
	}
	f := fileLoader{c: c, path: path, seen: map[string]int{}}
	f.mapping(doc, "", "")
	return errors.Join(f.errs...)
}

// fileLoader walks a YAML document, applying each key to c. A nested
// mapping joins its key to its children's with "_": history: {max_count: 5}
// is history_max_count: 5.
type fileLoader struct {
	c    *Config
	path string
	seen map[string]int // key → line where it was set
	errs []error
}

func (f *fileLoader) fail(line int, format string, args ...any) {
	f.errs = append(f.errs, fmt.Errorf("%s:%d: %s", f.path, line, fmt.Sprintf(format, args...)))
}

// mapping applies the keys of m; prefix is the setting key its parents
// spell, dotted the same as the file writes it, for messages.
func (f *fileLoader) mapping(m *yaml.Node, prefix, dotted string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		for v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if k.Kind != yaml.ScalarNode {
			f.fail(k.Line, "keys must be plain names")
			continue
		}
		key, shown := k.Value, k.Value
		if prefix != "" {
			key, shown = prefix+"_"+k.Value, dotted+"."+k.Value
		}
		if field, ok := structured[key]; ok && prefix == "" {
			if err := v.Decode(field(f.c)); err != nil {
				f.fail(v.Line, "%s: %v", shown, err)
			}
			continue
		}
		s, known := byKey[key]
		if v.Kind == yaml.MappingNode && !known {
			if hasKeyPrefix(key + "_") {
				f.mapping(v, key, shown)
				continue
			}
		}
		if !known {
			f.fail(k.Line, "unknown key %q%s", shown, suggest(key))
			continue
		}
		if line, dup := f.seen[key]; dup {
			f.fail(k.Line, "%s: already set on line %d", shown, line)
			continue
		}
		f.seen[key] = k.Line
		if v.Tag != "!!null" {
			f.c.given(key)
		}
		f.value(s, shown, v)
	}
}

// value applies one YAML value to the setting s.
func (f *fileLoader) value(s *setting, shown string, v *yaml.Node) {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return // "key:" with no value leaves the default
		}
		if err := s.set(f.c, v.Value); err != nil {
			f.fail(v.Line, "%s: %q: %v", shown, v.Value, err)
		}
	case yaml.SequenceNode:
		items := make([]string, 0, len(v.Content))
		for _, it := range v.Content {
			if it.Kind != yaml.ScalarNode {
				f.fail(it.Line, "%s: list items must be plain values", shown)
				return
			}
			items = append(items, it.Value)
		}
		if err := s.setList(f.c, items); err != nil {
			f.fail(v.Line, "%s: %v", shown, err)
		}
	default:
		f.fail(v.Line, "%s: expected a value, not a mapping", shown)
	}
}

// hasKeyPrefix reports whether some setting's key starts with p.
func hasKeyPrefix(p string) bool {
	for i := range settings {
		if strings.HasPrefix(settings[i].key, p) {
			return true
		}
	}
	return false
}

// suggest names the setting closest to an unknown key, if one is close.
func suggest(key string) string {
	best, bestDist := "", 3
	for i := range settings {
		if d := editDistance(key, settings[i].key); d < bestDist {
			best, bestDist = settings[i].key, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
