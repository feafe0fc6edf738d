package ingest

import (
	"errors"
	"fmt"
	"time"
)

// Preferences are one user's notification settings
// (GET/PUT /v1/preferences).
type Preferences struct {
	// Muted conversations notify nothing.
	Muted []string `json:"muted"`
	// QuietHours, when set, turn notifications silent: they still reach
	// the inbox and live tabs, marked quiet (no popup), and no push.
	QuietHours *QuietHours `json:"quiet_hours,omitempty"`
	// Channels switches delivery channels on or off: "live", "webpush",
	// "fcm", "apns", "webhook". Absent means on.
	Channels map[string]bool `json:"channels,omitempty"`
	// Locale picks the templates' language, e.g. "fr" or "pt-BR".
	Locale string `json:"locale,omitempty"`
}

// QuietHours is a daily window in a time zone; Start after End wraps
// midnight (22:00–07:00).
type QuietHours struct {
	Start    string `json:"start"` // "22:00"
	End      string `json:"end"`   // "07:00"
	TimeZone string `json:"time_zone,omitempty"`
}

// Channels Herald knows.
var knownChannels = map[string]bool{"live": true, "webpush": true, "fcm": true, "apns": true, "webhook": true}

// Limits on preferences input.
const (
	maxMuted      = 1000
	maxConvIDLen  = 256
	maxLocaleLen  = 35
	maxTimeZoneLn = 64
)

// Validate reports the first problem, naming the field.
func (p *Preferences) Validate() error {
	if len(p.Muted) > maxMuted {
		return fmt.Errorf("muted: at most %d conversations", maxMuted)
	}
	for _, c := range p.Muted {
		if c == "" || len(c) > maxConvIDLen {
			return errors.New("muted: conversation ids must be 1-256 bytes")
		}
	}
	if q := p.QuietHours; q != nil {
		if _, err := clock(q.Start); err != nil {
			return fmt.Errorf("quiet_hours.start: %w", err)
		}
		if _, err := clock(q.End); err != nil {
			return fmt.Errorf("quiet_hours.end: %w", err)
		}
		if len(q.TimeZone) > maxTimeZoneLn {
			return errors.New("quiet_hours.time_zone: too long")
		}
		if _, err := time.LoadLocation(q.TimeZone); err != nil {
			return fmt.Errorf("quiet_hours.time_zone: unknown zone %q", q.TimeZone)
		}
	}
	for ch := range p.Channels {
		if !knownChannels[ch] {
			return fmt.Errorf("channels: unknown channel %q (live, webpush, fcm, apns, webhook)", ch)
		}
	}
	if len(p.Locale) > maxLocaleLen {
		return errors.New("locale: too long")
	}
	return nil
}

// IsMuted reports whether conversation conv is muted.
func (p *Preferences) IsMuted(conv string) bool {
	for _, c := range p.Muted {
		if c == conv {
			return true
		}
	}
	return false
}

// ChannelOn reports whether channel ch is on.
func (p *Preferences) ChannelOn(ch string) bool {
	on, set := p.Channels[ch]
	return !set || on
}

// Quiet reports whether t falls in the quiet hours.
func (p *Preferences) Quiet(t time.Time) bool {
	q := p.QuietHours
	if q == nil {
		return false
	}
	start, err1 := clock(q.Start)
	end, err2 := clock(q.End)
	loc, err3 := time.LoadLocation(q.TimeZone)
	if err1 != nil || err2 != nil || err3 != nil || start == end {
		return false
	}
	lt := t.In(loc)
	now := time.Duration(lt.Hour())*time.Hour + time.Duration(lt.Minute())*time.Minute
	if start < end {
		return now >= start && now < end
	}
	return now >= start || now < end // wraps midnight
}

// clock parses "HH:MM" into time since midnight.
func clock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("want HH:MM, got %q", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}
