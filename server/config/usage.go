package config

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// Usage describes every setting: its flag, environment variable, type,
// meaning and default.
func Usage() string {
	var b strings.Builder
	b.WriteString(`Usage: herald serve [flags]

Every setting is a flag, a HERALD_* environment variable, or a key of
herald.yaml (snake_case; "history: {max_count: 10}" nests). A flag beats
the environment, which beats the file, which beats the default. The file is
--config, else $HERALD_CONFIG, else ./herald.yaml when present.
Durations: 5s, 1m30s, 7d. Lists: comma separated (YAML lists in the file).

`)
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	def := Default()
	for i := range settings {
		s := &settings[i]
		line := fmt.Sprintf("  --%s %s\t%s\t%s", s.flag(), s.typeName(), s.env(), s.help)
		if v := s.get(def); v != "" && v != "false" {
			line += " (default " + v + ")"
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "  --%s string\t%s\tpath to the YAML config file (default ./%s when present)\n", configFlag, configEnv, DefaultFile)
	_ = w.Flush()
	return b.String()
}
