package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/delivery"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/push"
)

// Limits of the read-state API.
const (
	maxMarkBody = 64 << 10
	maxMarkIDs  = 1000
	maxMarkID   = 128
)

// Read state (docs/api.md): a mark is checked against the user's history
// (folded by notification.Fold), recorded as an event of that history,
// which every live session of the user on every node receives, and
// followed by the unread counts as of it. Pending pushes of what was read
// or dismissed are cancelled.

type markRequest struct {
	IDs  []string `json:"ids"`
	Tag  string   `json:"tag"`
	UpTo string   `json:"up_to"`
}

func (req *markRequest) validate() error {
	n := 0
	if req.IDs != nil {
		n++
	}
	if req.Tag != "" {
		n++
	}
	if req.UpTo != "" {
		n++
	}
	if n != 1 {
		return invalidField("ids", `exactly one of "ids", "tag" and "up_to" is required`)
	}
	switch {
	case req.IDs != nil:
		if len(req.IDs) == 0 || len(req.IDs) > maxMarkIDs {
			return invalidField("ids", "1-1000 notification ids required")
		}
		for _, id := range req.IDs {
			if id == "" || len(id) > maxMarkID || !utf8.ValidString(id) {
				return invalidField("ids", "each id must be 1-128 bytes of UTF-8")
			}
		}
	case req.Tag != "":
		if len(req.Tag) > maxTagLen || !utf8.ValidString(req.Tag) {
			return invalidField("tag", "must be at most 256 bytes of UTF-8")
		}
	default:
		if _, err := notification.ParseCursor(req.UpTo); err != nil {
			return invalidField("up_to", "must be a cursor")
		}
	}
	return nil
}

type markResponse struct {
	Changed int                  `json:"changed"`
	Unread  *notification.Unread `json:"unread"`
}

// handleMark answers POST /v1/read, /v1/seen and /v1/dismiss for the
// token's user.
func (s *Server) handleMark(state string) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		c := userClaims(r)
		if ok, retry := s.limits.allow(s.limits.marks, "mark", "http", c.Subject, 1); !ok {
			writeRateLimited(w, retry)
			return nil
		}
		by := "session"
		if c.SessionID != "" {
			by = "session:" + c.SessionID
		}
		return s.serveMark(w, r, c.Subject, state, by)
	}
}

// handleUserMark answers POST /v1/users/{id}/read, /seen and /dismiss:
// the same on the user's behalf, with the API key.
func (s *Server) handleUserMark(state string) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		user := mux.Vars(r)["id"]
		if err := validUserID(user); err != nil {
			return invalidField("id", err.Error())
		}
		return s.serveMark(w, r, user, state, "api")
	}
}

func (s *Server) serveMark(w http.ResponseWriter, r *http.Request, user, state, by string) error {
	var req markRequest
	if err := decodeJSON(w, r, maxMarkBody, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	m := &notification.Mark{State: state, IDs: req.IDs, Tag: req.Tag, UpTo: req.UpTo, At: time.Now().UTC(), By: by}
	changed, unread, err := s.mark(r.Context(), user, m)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, markResponse{Changed: len(changed), Unread: unread})
	return nil
}

// errNothingToMark: the selector names nothing in the user's history.
var errNothingToMark = codeNotFound.with("no such notification in this user's history")

// mark records m for user: it checks m's selector against the user's
// history (anything that names a notification the user does not have is a
// 404 that changes nothing), records it unless it changes nothing, cancels
// the pending pushes of what it read or dismissed, and publishes the
// unread counts as of it. It returns the ids whose state changed and the
// counts.
func (s *Server) mark(ctx context.Context, user string, m *notification.Mark) ([]string, *notification.Unread, error) {
	rs, err := s.readState(ctx, user)
	if err != nil {
		return nil, nil, err
	}
	if err := checkSelector(rs, m); err != nil {
		return nil, nil, err
	}
	changed := rs.Changes(m)
	if len(changed) == 0 {
		return nil, rs.Unread(), nil // already so: idempotent
	}
	ev, err := notification.NewMarkEvent(user, m)
	if err != nil {
		return nil, nil, err
	}
	if _, err := s.delivery.Publish(ctx, []*notification.Event{ev}, delivery.PublishOptions{}); err != nil {
		s.log.Warn("mark publish failed", "err", err)
		return nil, nil, errUnavailable
	}
	if m.State != notification.StateSeen && s.push != nil && s.push.fallback != nil {
		s.push.fallback.Acked(user, changed)
	}
	// What the mark newly closes is known from the state before it (a
	// dismissal of what was read closes nothing new).
	var closes []string
	if m.State != notification.StateSeen {
		closes = slices.DeleteFunc(slices.Clone(changed), func(id string) bool { return !rs.Marks(id).Unread() })
	}
	// The counts as of the mark, folded from the history up to it: the
	// same whichever node computes them, whatever was appended since. Only
	// what came after the fold above is read again.
	unread, err := s.unreadAsOf(ctx, user, rs, ev)
	if err != nil {
		return nil, nil, err
	}
	// The devices, from the state as of the mark: a push recorded while
	// the mark was on its way is cleared too. One recorded after the mark
	// is cleared by recordDelivered.
	if clear := clearingPush(rs, user, closes, ev.Cursor, m.At); clear != nil {
		clear.Badge = &unread.Total
		s.scheduleClear(ctx, clear)
	}
	uev, err := notification.NewUnreadEvent(user, unread, m.At)
	if err != nil {
		return nil, nil, err
	}
	if _, err := s.delivery.Publish(ctx, []*notification.Event{uev}, delivery.PublishOptions{}); err != nil {
		// The mark is recorded; the counts reach the sessions with the
		// next mark, and GET /v1/unread has them meanwhile.
		s.log.Warn("unread publish failed", "err", err)
	}
	return changed, unread, nil
}

// clearingPush is the clearing push of notifications ids, closed by the
// event at cursor at: to the devices rs says they were pushed to, and no
// others; nil when there are none. The caller sets the badge.
func clearingPush(rs *notification.ReadState, user string, ids []string, at notification.Cursor, now time.Time) *push.Message {
	if len(ids) == 0 {
		return nil
	}
	devices := rs.ShownOn(ids)
	if len(devices) == 0 {
		return nil
	}
	m := &push.Message{ID: "read:" + at.String(), User: user, Clear: ids, Devices: devices, Created: now}
	if tags := rs.Tags(ids); len(tags) == 1 {
		m.Tag = tags[0]
	}
	return m
}

// scheduleClear schedules clearing push m, due at once. A failure is
// logged: the mark stands, and the next push carries the right badge.
func (s *Server) scheduleClear(ctx context.Context, m *push.Message) {
	if s.push == nil || s.push.dispatch == nil {
		return
	}
	body, err := json.Marshal(m)
	if err == nil {
		err = s.backends.push.SchedulePush(ctx, []push.Pending{{User: m.User, ID: m.ID, Due: m.Created, Message: body}})
	}
	if err != nil {
		s.log.Warn("clearing push not scheduled", "user", m.User, "err", err)
		return
	}
	s.push.dispatch.Kick()
}

// checkSelector refuses a selector that names anything the user's history
// does not hold.
func checkSelector(rs *notification.ReadState, m *notification.Mark) error {
	switch {
	case len(m.IDs) > 0:
		for _, id := range m.IDs {
			if !rs.Has(id) {
				return errNothingToMark
			}
		}
	case m.UpTo != "":
		c, _ := notification.ParseCursor(m.UpTo)
		head := rs.Head()
		if head.IsZero() || c.Epoch != head.Epoch || c.Seq > head.Seq {
			return codeNotFound.with("up_to is not a position of this user's history")
		}
	default:
		if len(rs.Select(m)) == 0 {
			return errNothingToMark
		}
	}
	return nil
}

// historyLimit is how many events a read-state fold reads: the whole
// retained history.
func (s *Server) historyLimit() int {
	if s.cfg.HistoryMaxCount > 0 {
		return s.cfg.HistoryMaxCount
	}
	return 1000
}

// readState folds the user's retained history.
func (s *Server) readState(ctx context.Context, user string) (*notification.ReadState, error) {
	events, _, err := s.broker.History(ctx, user, notification.Cursor{}, s.historyLimit())
	if err != nil {
		s.log.Warn("read state: history read failed", "err", err)
		return nil, errUnavailable
	}
	return notification.Fold(events), nil
}

// unreadAsOf folds into rs (the user's history folded up to its head) the
// events after that head up to and including mark, just published, and
// returns the counts. When mark came right after the head, nothing is
// read; when the history cannot be resumed from rs's head (trimmed
// meanwhile), it is folded again from the start.
func (s *Server) unreadAsOf(ctx context.Context, user string, rs *notification.ReadState, mark *notification.Event) (*notification.Unread, error) {
	cur, head := mark.Cursor, rs.Head()
	if cur.Epoch == head.Epoch && cur.Seq == head.Seq+1 {
		rs.Apply(mark)
		return rs.Unread(), nil
	}
	events, _, err := s.broker.History(ctx, user, rs.Head(), s.historyLimit())
	if errors.Is(err, broker.ErrReset) {
		rs = notification.Fold(nil)
		events, _, err = s.broker.History(ctx, user, notification.Cursor{}, s.historyLimit())
	}
	if err != nil {
		s.log.Warn("read state: history read failed", "err", err)
		return nil, errUnavailable
	}
	for _, ev := range events {
		if ev.Cursor.Epoch == cur.Epoch && ev.Cursor.Seq > cur.Seq {
			break
		}
		rs.Apply(ev)
	}
	return rs.Unread(), nil
}

// handleUnread is GET /v1/unread: the token's user's unread counts.
func (s *Server) handleUnread(w http.ResponseWriter, r *http.Request) error {
	rs, err := s.readState(r.Context(), userClaims(r).Subject)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rs.Unread())
	return nil
}

// unreadTotal is the badge of push m: its user's unread total, counting
// m's notification when the push goes before it reached the history.
func (s *Server) unreadTotal(ctx context.Context, m *push.Message) (int, error) {
	rs, err := s.readState(ctx, m.User)
	if err != nil {
		return 0, err
	}
	n := rs.Unread().Total
	if !m.Silent() && !rs.Has(m.ID) {
		n++
	}
	return n, nil
}

// recordDelivered records in the user's history that notification id was
// pushed to devices, for the clearing push of its read. When the
// notification was read or dismissed before the record landed, the
// devices are cleared at once: a read's own clearing push only sees the
// pushes recorded before it.
func (s *Server) recordDelivered(ctx context.Context, user, id string, devices []string) {
	m := &notification.Mark{State: notification.StateDelivered, IDs: []string{id}, At: time.Now().UTC(), Devices: devices}
	ev, err := notification.NewMarkEvent(user, m)
	if err == nil {
		_, err = s.delivery.Publish(ctx, []*notification.Event{ev}, delivery.PublishOptions{})
	}
	if err != nil {
		s.log.Warn("push delivery not recorded; its read will not clear the devices", "user", user, "id", id, "err", err)
		return
	}
	rs, err := s.readState(ctx, user)
	if err != nil || !rs.Has(id) || rs.Marks(id).Unread() {
		return
	}
	clear := &push.Message{ID: "read:" + ev.Cursor.String(), User: user, Clear: []string{id}, Devices: devices, Created: m.At}
	if tags := rs.Tags(clear.Clear); len(tags) == 1 {
		clear.Tag = tags[0]
	}
	total := rs.Unread().Total
	clear.Badge = &total
	s.scheduleClear(ctx, clear)
}

// providerReads applies the chat platforms' read events (ingest.Reader).
type providerReads struct{ s *Server }

// ReadTag marks user's notifications with tag read, as a read through
// the API would; a conversation with nothing to read is no error.
func (r providerReads) ReadTag(ctx context.Context, user, tag, by string) error {
	m := &notification.Mark{State: notification.StateRead, Tag: tag, At: time.Now().UTC(), By: by}
	if _, _, err := r.s.mark(ctx, user, m); err != nil && err != errNothingToMark {
		return err
	}
	return nil
}
