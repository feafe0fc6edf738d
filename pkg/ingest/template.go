package ingest

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"text/template"
	"unicode/utf8"

	"github.com/heraldhq/herald/pkg/webhook"
)

// MaxBodyRunes is how long a notification body may be; longer ones are cut
// on a rune boundary and end with an ellipsis.
const MaxBodyRunes = 140

// TemplateText is the source of one template: each field is text/template
// over TemplateData; an empty field keeps what the event or the default
// template gives.
type TemplateText struct {
	Title string `yaml:"title" json:"title,omitempty"`
	Body  string `yaml:"body" json:"body,omitempty"`
	URL   string `yaml:"url" json:"url,omitempty"`
}

// TemplateData is what a template sees.
type TemplateData struct {
	Provider         string
	Type             string
	Conversation     string
	ConversationName string
	Message          string
	Sender           string
	SenderName       string
	Text             string
	Title            string // the event's own title, for ready-made notifications
	Body             string
	URL              string
	Recipient        string
	Count            int // messages collapsed into this one (1 when not collapsed)
}

// compiled is one TemplateText, parsed.
type compiled struct {
	title, body, url *template.Template
}

// Templates renders notifications per event and locale. Keys are looked up
// most specific first: "<provider>/<type>", "<type>", "<kind>" (message,
// update, notification), then the built-in default; within a key, the
// recipient's locale ("pt-BR"), its language ("pt"), then "default".
type Templates struct {
	byKey map[string]map[string]*compiled
}

// Built-in defaults: title is who wrote, body what they wrote, url the
// conversation; a collapsed burst says how many.
var defaultTemplates = map[string]TemplateText{
	"message": {
		Title: `{{if gt .Count 1}}{{.Count}} new messages from {{or .SenderName .Sender}}{{else}}{{or .SenderName .ConversationName .Sender "New message"}}{{end}}`,
		Body:  `{{.Text}}`,
		URL:   `{{with .Conversation}}/chat/{{pathescape .}}{{end}}`,
	},
	"update": {
		Title: `{{or .SenderName .Sender "Message"}} (edited)`,
		Body:  `{{.Text}}`,
		URL:   `{{with .Conversation}}/chat/{{pathescape .}}{{end}}`,
	},
	"notification": {
		Title: `{{.Title}}`,
		Body:  `{{.Body}}`,
		URL:   `{{.URL}}`,
	},
}

// NewTemplates parses the operator's templates (key → locale → text) over
// the built-in defaults. Every parse error is returned, naming its key.
func NewTemplates(src map[string]map[string]TemplateText) (*Templates, error) {
	t := &Templates{byKey: map[string]map[string]*compiled{}}
	var errs []string
	add := func(key, locale string, tt TemplateText) {
		c, err := compile(key+"."+locale, tt)
		if err != nil {
			errs = append(errs, err.Error())
			return
		}
		if t.byKey[key] == nil {
			t.byKey[key] = map[string]*compiled{}
		}
		t.byKey[key][strings.ToLower(locale)] = c
	}
	for key, tt := range defaultTemplates {
		add(key, "default", tt)
	}
	for key, locales := range src {
		for locale, tt := range locales {
			add(key, locale, tt)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("templates: %s", strings.Join(errs, "; "))
	}
	return t, nil
}

// funcs are the functions templates may call beside text/template's own:
// pathescape makes a value one path segment, so a conversation id with a
// space, "/" or "?" still gives a url that notification.ValidURL accepts
// (a rendered url it refuses is dropped).
var funcs = template.FuncMap{"pathescape": url.PathEscape}

func compile(name string, tt TemplateText) (*compiled, error) {
	var c compiled
	for _, f := range []struct {
		dst **template.Template
		src string
		sub string
	}{{&c.title, tt.Title, "title"}, {&c.body, tt.Body, "body"}, {&c.url, tt.URL, "url"}} {
		if f.src == "" {
			continue
		}
		tpl, err := template.New(name + "." + f.sub).Option("missingkey=error").Funcs(funcs).Parse(f.src)
		if err != nil {
			return nil, err
		}
		*f.dst = tpl
	}
	return &c, nil
}

// Rendered is a template's output.
type Rendered struct {
	Title, Body, URL string
}

// Render fills title, body and url for one recipient of ev.
func (t *Templates) Render(ev *webhook.Event, d *TemplateData, locale string) (Rendered, error) {
	keys := []string{ev.Provider + "/" + ev.Type, ev.Type, ev.Kind.String()}
	var out Rendered
	for _, field := range []struct {
		dst  *string
		pick func(*compiled) *template.Template
	}{
		{&out.Title, func(c *compiled) *template.Template { return c.title }},
		{&out.Body, func(c *compiled) *template.Template { return c.body }},
		{&out.URL, func(c *compiled) *template.Template { return c.url }},
	} {
		tpl := t.find(keys, locale, field.pick)
		if tpl == nil {
			continue
		}
		var b bytes.Buffer
		if err := tpl.Execute(&b, d); err != nil {
			return out, fmt.Errorf("template %s: %w", tpl.Name(), err)
		}
		*field.dst = strings.TrimSpace(b.String())
	}
	out.Body = Truncate(out.Body, MaxBodyRunes)
	return out, nil
}

// find returns the most specific template with the field set.
func (t *Templates) find(keys []string, locale string, pick func(*compiled) *template.Template) *template.Template {
	locales := localeChain(locale)
	for _, key := range keys {
		byLocale := t.byKey[key]
		if byLocale == nil {
			continue
		}
		for _, l := range locales {
			if c := byLocale[l]; c != nil {
				if tpl := pick(c); tpl != nil {
					return tpl
				}
			}
		}
	}
	return nil
}

// localeChain is "pt-br" → ["pt-br", "pt", "default"].
func localeChain(locale string) []string {
	locale = strings.ToLower(strings.ReplaceAll(locale, "_", "-"))
	chain := make([]string, 0, 3)
	if locale != "" {
		chain = append(chain, locale)
		if i := strings.IndexByte(locale, '-'); i > 0 {
			chain = append(chain, locale[:i])
		}
	}
	return append(chain, "default")
}

// Truncate cuts s to at most max runes, on a rune boundary, ending with an
// ellipsis when it was cut.
func Truncate(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max-1 {
			return strings.TrimRight(s[:i], " \t\n") + "…"
		}
		n++
	}
	return s
}
