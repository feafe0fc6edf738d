package server

// DEVELOPMENT ONLY. The demo helpers mint a token for any user name and send
// notifications and signed webhooks without credentials. They exist only
// when cfg.Demo is set (true zero-config mode, --demo, HERALD_DEMO=true);
// every /demo/ path is a 404 otherwise, and they answer only JSON from the
// demo page's own origin. Never enable demo mode on a server reachable by
// people you do not trust.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/heraldhq/herald/pkg/delivery"
	"github.com/heraldhq/herald/pkg/token"
	"github.com/heraldhq/herald/pkg/webhook/talkjs"
)

const (
	demoTokenTTL = time.Hour
	maxDemoBody  = 16 << 10
	demoSender   = "bob"
)

// demoRoutes registers the development helpers of the demo page.
func (s *Server) demoRoutes(r *mux.Router) {
	r.HandleFunc("/demo/token", s.demoGuard(handle(s.handleDemoToken))).Methods(http.MethodPost)
	r.HandleFunc("/demo/send", s.demoGuard(handle(s.handleDemoSend))).Methods(http.MethodPost)
	r.HandleFunc("/demo/webhook/{provider}", s.demoGuard(handle(s.handleDemoWebhook))).Methods(http.MethodPost)
}

// demoGuard lets only the demo page itself call the helpers. A browser
// sends a cross-site form or text/plain POST without a preflight, so the
// body must be application/json (which needs one, and gets no CORS
// answer here) and an Origin, when sent, must be this server's. On a
// loopback listener the Host must be a loopback name too: a page on
// another site that rebinds its DNS name to 127.0.0.1 is same-origin
// with itself, not with localhost.
func (s *Server) demoGuard(next http.HandlerFunc) http.HandlerFunc {
	loopback := listensOnLoopback(s.cfg.Addr)
	return func(w http.ResponseWriter, r *http.Request) {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			writeError(w, codeUnsupportedMedia.with("demo helpers take application/json"))
			return
		}
		if !sameOrigin(r) {
			writeError(w, codeOriginNotAllowed.with("demo helpers answer only the demo page's own origin"))
			return
		}
		if loopback && !isLoopbackHost(r.Host) {
			writeError(w, codeHostNotAllowed.with("demo helpers on a loopback listener answer only loopback host names"))
			return
		}
		next(w, r)
	}
}

// sameOrigin reports whether a browser request comes from a page of this
// server: no Origin (not a browser, or a same-origin GET), or one whose
// host is the request's; Sec-Fetch-Site, where sent, must agree.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// listensOnLoopback reports whether addr (host:port) binds loopback only.
func listensOnLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && host != "" && isLoopbackHost(host)
}

// isLoopbackHost reports whether host (with or without a port) names this
// machine's loopback interface.
func isLoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// handleDemoToken is POST /demo/token {"user":"alice"} → {"token":"…"}: an
// HS256 user token for a fresh session, valid for an hour.
func (s *Server) handleDemoToken(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		User string `json:"user"`
	}
	if err := decodeJSON(w, r, maxDemoBody, &req); err != nil {
		return err
	}
	if err := validUserID(req.User); err != nil {
		return invalidField("user", err.Error())
	}
	if s.cfg.JWTSecret == "" {
		return codeNoJWTSecret.with("demo tokens need HERALD_JWT_SECRET (this server verifies tokens through JWKS)")
	}
	exp := time.Now().Add(demoTokenTTL)
	raw, err := token.Mint([]byte(s.cfg.JWTSecret), token.Claims{Subject: req.User, SessionID: token.NewSessionID(), ExpiresAt: exp})
	if err != nil {
		s.log.Warn("demo token mint failed", "err", err)
		return codeInternal.with("could not mint a token")
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": raw, "user": req.User, "expires_at": exp.UTC().Format(time.RFC3339)})
	return nil
}

// handleDemoSend is POST /demo/send {"to":[…],"title","body","tag","url","from"}:
// the same publish path as POST /v1/notifications, without the API key.
// from (default "bob") becomes data.senderId, so the page can show that a
// user's own messages raise no popup.
func (s *Server) handleDemoSend(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		To    []string `json:"to"`
		From  string   `json:"from"`
		Title string   `json:"title"`
		Body  string   `json:"body"`
		Tag   string   `json:"tag"`
		URL   string   `json:"url"`
	}
	if err := decodeJSON(w, r, maxDemoBody, &req); err != nil {
		return err
	}
	if req.From == "" {
		req.From = demoSender
	}
	if err := validUserID(req.From); err != nil {
		return invalidField("from", err.Error())
	}
	data, _ := json.Marshal(map[string]string{"provider": "demo", "senderId": req.From})
	send := sendRequest{To: req.To, Type: "demo", Title: req.Title, Body: req.Body, Tag: req.Tag, URL: req.URL, Data: data}
	if err := send.validate(); err != nil {
		return err
	}
	res, err := s.delivery.Send(r.Context(), send.notification(), send.To, delivery.PublishOptions{})
	if err != nil {
		s.log.Warn("demo publish failed", "err", err)
		return errUnavailable
	}
	writeJSON(w, http.StatusAccepted, sent(res.Events))
	return nil
}

// handleDemoWebhook is POST /demo/webhook/{talkjs|cometchat} {"to":"alice"}:
// it builds a realistic sample webhook from "bob" to the user, signs it
// with the configured provider credentials, posts it to this server's own
// /webhooks/{provider} in process, and answers with the status and body
// that endpoint gave.
func (s *Server) handleDemoWebhook(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		To   string `json:"to"`
		Text string `json:"text"`
	}
	if err := decodeJSON(w, r, maxDemoBody, &req); err != nil {
		return err
	}
	if err := validUserID(req.To); err != nil {
		return invalidField("to", err.Error())
	}
	if req.Text == "" {
		req.Text = "Hi " + req.To + ", this is a sample message from the Herald demo."
	}
	provider := mux.Vars(r)["provider"]
	now := time.Now()
	var (
		body   []byte
		header = http.Header{"Content-Type": {"application/json"}}
	)
	switch provider {
	case "talkjs":
		if s.cfg.TalkJSSecret == "" {
			return codeNotConfigured.with("set HERALD_TALKJS_SECRET to sign TalkJS webhooks")
		}
		body = demoTalkJSPayload(req.To, req.Text, now)
		sig, ts := talkjs.Sign(s.cfg.TalkJSSecret, now, body)
		header.Set("X-TalkJS-Timestamp", ts)
		header.Set("X-TalkJS-Signature", sig)
	case "cometchat":
		if s.cfg.CometChatUser == "" {
			return codeNotConfigured.with("set HERALD_COMETCHAT_USER and HERALD_COMETCHAT_PASSWORD for CometChat webhooks")
		}
		body = demoCometChatPayload(req.To, req.Text, now)
		header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(s.cfg.CometChatUser+":"+s.cfg.CometChatPassword)))
	default:
		return errNotFound
	}

	// In process, through the full handler: the same verification, queue
	// and delivery path as a request from the provider.
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	in := httptest.NewRequestWithContext(ctx, http.MethodPost, "/webhooks/"+provider, bytes.NewReader(body))
	in.Header = header
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, in)

	var relayed any = strings.TrimSpace(rec.Body.String())
	if b := rec.Body.Bytes(); json.Valid(b) {
		relayed = json.RawMessage(b)
	}
	writeJSON(w, rec.Code, map[string]any{
		"webhook":  "/webhooks/" + provider,
		"status":   rec.Code,
		"response": relayed,
	})
	return nil
}

func demoID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// demoTalkJSConversation is the TalkJS sample's conversation, and so the
// tag of its notification: distinct from the other samples', so that one
// does not replace another's popup.
const demoTalkJSConversation = "talkjs-demo"

// demoTalkJSPayload is a TalkJS message.sent event: bob writes to user in
// conversation demoTalkJSConversation.
func demoTalkJSPayload(user, text string, now time.Time) []byte {
	ms := now.UnixMilli()
	participant := map[string]any{"access": "ReadWrite", "notify": true}
	b, _ := json.Marshal(map[string]any{
		"id":        demoID("evt_"),
		"type":      "message.sent",
		"createdAt": ms,
		"data": map[string]any{
			"conversation": map[string]any{
				"id":              demoTalkJSConversation,
				"subject":         "Herald demo",
				"topicId":         nil,
				"photoUrl":        nil,
				"welcomeMessages": nil,
				"custom":          map[string]string{},
				"participants":    map[string]any{demoSender: participant, user: participant},
				"createdAt":       ms - 3_600_000,
			},
			"message": map[string]any{
				"id":             demoID("msg_"),
				"conversationId": demoTalkJSConversation,
				"type":           "UserMessage",
				"senderId":       demoSender,
				"text":           text,
				"readBy":         []string{},
				"origin":         "rest",
				"location":       nil,
				"attachment":     nil,
				"custom":         map[string]string{},
				"createdAt":      ms,
				"editedAt":       nil,
			},
			"sender": map[string]any{
				"id":               demoSender,
				"name":             "Bob",
				"email":            nil,
				"photoUrl":         nil,
				"role":             "default",
				"locale":           nil,
				"custom":           map[string]string{},
				"availabilityText": nil,
				"welcomeMessage":   nil,
				"createdAt":        ms - 86_400_000,
			},
		},
	})
	return b
}

// demoCometChatPayload is a CometChat message_sent webhook for a
// one-to-one message from bob to user. Herald makes it a message
// notification tagged with the conversation ("bob_user_<user>", CometChat's
// form) and with the conversation's URL, which the custom provider's push
// payload has no field for.
func demoCometChatPayload(user, text string, now time.Time) []byte {
	entity := func(uid, name string) map[string]any {
		return map[string]any{"entity": map[string]string{"uid": uid, "name": name, "status": "available", "role": "default"}, "entityType": "user"}
	}
	b, _ := json.Marshal(map[string]any{
		"trigger": "message_sent",
		"data": map[string]any{
			"message": map[string]any{
				"id":             demoID(""),
				"conversationId": demoSender + "_user_" + user,
				"sender":         demoSender,
				"receiverType":   "user",
				"receiver":       user,
				"category":       "message",
				"type":           "text",
				"data": map[string]any{
					"text":     text,
					"entities": map[string]any{"sender": entity(demoSender, "Bob"), "receiver": entity(user, user)},
				},
				"sentAt":    now.Unix(),
				"updatedAt": now.Unix(),
			},
		},
		"appId":   "herald-demo",
		"region":  "us",
		"webhook": "herald-demo",
	})
	return b
}
