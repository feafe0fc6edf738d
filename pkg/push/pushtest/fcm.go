package pushtest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FCMMessage is the FCM v1 message JSON as the fake decoded it.
type FCMMessage struct {
	Name         string            `json:"name,omitempty"`
	Token        string            `json:"token,omitempty"`
	Topic        string            `json:"topic,omitempty"`
	Condition    string            `json:"condition,omitempty"`
	Data         map[string]string `json:"data,omitempty"`
	Notification *struct {
		Title string `json:"title,omitempty"`
		Body  string `json:"body,omitempty"`
		Image string `json:"image,omitempty"`
	} `json:"notification,omitempty"`
	Android *struct {
		CollapseKey           string            `json:"collapse_key,omitempty"`
		Priority              string            `json:"priority,omitempty"`
		TTL                   string            `json:"ttl,omitempty"`
		RestrictedPackageName string            `json:"restricted_package_name,omitempty"`
		Data                  map[string]string `json:"data,omitempty"`
		Notification          map[string]any    `json:"notification,omitempty"`
		FCMOptions            map[string]any    `json:"fcm_options,omitempty"`
		DirectBootOK          bool              `json:"direct_boot_ok,omitempty"`
	} `json:"android,omitempty"`
	Webpush *struct {
		Headers      map[string]string `json:"headers,omitempty"`
		Data         map[string]string `json:"data,omitempty"`
		Notification map[string]any    `json:"notification,omitempty"`
		FCMOptions   map[string]any    `json:"fcm_options,omitempty"`
	} `json:"webpush,omitempty"`
	APNS *struct {
		Headers           map[string]string `json:"headers,omitempty"`
		Payload           map[string]any    `json:"payload,omitempty"`
		FCMOptions        map[string]any    `json:"fcm_options,omitempty"`
		LiveActivityToken string            `json:"live_activity_token,omitempty"`
	} `json:"apns,omitempty"`
	FCMOptions map[string]any `json:"fcm_options,omitempty"`
}

// FCMSend is one message the fake accepted.
type FCMSend struct {
	Project      string
	Message      FCMMessage
	Raw          []byte // the request body
	ValidateOnly bool
	Header       http.Header
}

type serviceAccount struct {
	email, keyID string
	pub          *rsa.PublicKey
}

type accessToken struct {
	email   string
	expires time.Time
}

// FCMServer is a fake of Google's OAuth2 token endpoint and the FCM HTTP v1
// API.
//
// POST /token checks a JWT-bearer grant (RFC 7523): grant_type, and an
// RS256 assertion that verifies with the key of a service account made by
// NewServiceAccount (kid = private_key_id, iss = client_email), with aud
// the token URI, a scope naming firebase.messaging or cloud-platform and a
// lifetime of at most an hour; 400 invalid_grant otherwise. It answers a
// one-hour access token.
//
// POST /v1/projects/{project}/messages:send requires a live access token
// from /token (401 UNAUTHENTICATED) and the fake's project (403
// PERMISSION_DENIED), then checks the body: known fields only, exactly one
// of token/topic/condition (a token for Herald), a notification or data,
// no reserved data keys, data within 4096 bytes, android priority
// normal/high and ttl "<seconds>s", webpush TTL/Urgency/Topic headers and
// apns-priority/apns-collapse-id/apns-push-type valid; 400
// INVALID_ARGUMENT otherwise. Tokens marked Unregister get FCM's 404
// NOT_FOUND with errorCode UNREGISTERED.
type FCMServer struct {
	*base
	project  string
	accounts map[string]serviceAccount // by client_email
	tokens   map[string]accessToken
	issued   int
	gone     map[string]bool
	sends    []FCMSend
}

// NewFCMServer starts a fake FCM for projectID, closed when t ends.
func NewFCMServer(t testing.TB, projectID string) *FCMServer {
	s := &FCMServer{
		base: newBase(), project: projectID,
		accounts: map[string]serviceAccount{}, tokens: map[string]accessToken{}, gone: map[string]bool{},
	}
	s.start(t, http.HandlerFunc(s.serve), true)
	return s
}

// TokenURI is where the fake issues access tokens.
func (s *FCMServer) TokenURI() string { return s.URL() + "/token" }

// Endpoint is the FCM API base URL to configure a sender with.
func (s *FCMServer) Endpoint() string { return s.URL() + "/v1" }

// NewServiceAccount makes a service-account JSON for the fake's project
// with a fresh RSA key and token_uri pointing at the fake, and trusts it.
func (s *FCMServer) NewServiceAccount() []byte {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	keyID := randomHex(20)
	email := "herald-" + randomHex(3) + "@" + s.project + ".iam.gserviceaccount.com"
	s.mu.Lock()
	s.accounts[email] = serviceAccount{email: email, keyID: keyID, pub: &key.PublicKey}
	s.mu.Unlock()
	b, err := json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  s.project,
		"private_key_id":              keyID,
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                email,
		"client_id":                   randomHex(10),
		"auth_uri":                    s.URL() + "/auth",
		"token_uri":                   s.TokenURI(),
		"auth_provider_x509_cert_url": s.URL() + "/certs",
		"universe_domain":             "googleapis.com",
	}, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

// Unregister makes later sends to token answer UNREGISTERED.
func (s *FCMServer) Unregister(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gone[token] = true
}

// Answer makes the next n valid sends to token fail with status, FCM
// errorCode (empty: the usual one for status) and Retry-After.
func (s *FCMServer) Answer(token string, n, status int, errorCode, retryAfter string) {
	s.script(token, answer{n: n, status: status, reason: errorCode, retryAfter: retryAfter})
}

// Sends returns the accepted messages, oldest first.
func (s *FCMServer) Sends() []FCMSend {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]FCMSend(nil), s.sends...)
}

// WaitSends waits up to d for at least n accepted messages and returns them.
func (s *FCMServer) WaitSends(t testing.TB, n int, d time.Duration) []FCMSend {
	t.Helper()
	s.waitAccepted(t, n, d)
	return s.Sends()
}

// TokensIssued is how many access tokens /token handed out.
func (s *FCMServer) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

func (s *FCMServer) serve(w http.ResponseWriter, r *http.Request) {
	s.count()
	switch {
	case r.URL.Path == "/token":
		s.serveToken(w, r)
	case strings.HasPrefix(r.URL.Path, "/v1/projects/") && strings.HasSuffix(r.URL.Path, "/messages:send"):
		s.serveSend(w, r)
	default:
		s.fail("fcm %s %s: unknown path", r.Method, r.URL.Path)
		fcmError(w, http.StatusNotFound, "NOT_FOUND", "", "unknown path")
	}
}

func (s *FCMServer) serveToken(w http.ResponseWriter, r *http.Request) {
	reject := func(code, format string, args ...any) {
		msg := s.fail("fcm token: %s: "+format, append([]any{code}, args...)...)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": msg})
	}
	if r.Method != http.MethodPost {
		reject("invalid_request", "method must be POST")
		return
	}
	if err := r.ParseForm(); err != nil {
		reject("invalid_request", "form: %v", err)
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		reject("unsupported_grant_type", "grant_type %q", g)
		return
	}
	claims := jwt.MapClaims{}
	var account serviceAccount
	_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(tok *jwt.Token) (any, error) {
		iss, _ := claims["iss"].(string)
		s.mu.Lock()
		a, ok := s.accounts[iss]
		s.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("unknown service account %q", iss)
		}
		if kid, _ := tok.Header["kid"].(string); kid != "" && kid != a.keyID {
			return nil, fmt.Errorf("kid %q is not the account's private_key_id", kid)
		}
		account = a
		return a.pub, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(s.TokenURI()),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		reject("invalid_grant", "assertion: %v", err)
		return
	}
	scope, _ := claims["scope"].(string)
	if !strings.Contains(scope, "https://www.googleapis.com/auth/firebase.messaging") &&
		!strings.Contains(scope, "https://www.googleapis.com/auth/cloud-platform") {
		reject("invalid_scope", "scope %q grants no FCM access", scope)
		return
	}
	iat, _ := claims.GetIssuedAt()
	exp, _ := claims.GetExpirationTime()
	if iat == nil || exp.Sub(iat.Time) > time.Hour+time.Minute {
		reject("invalid_grant", "assertion lifetime over an hour or no iat")
		return
	}
	tok := "ya29.fake-" + randomHex(24)
	s.mu.Lock()
	s.tokens[tok] = accessToken{email: account.email, expires: time.Now().Add(time.Hour)}
	s.issued++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "expires_in": 3599, "token_type": "Bearer"})
}

var fcmStatus = map[int]struct{ status, code string }{
	http.StatusBadRequest:          {"INVALID_ARGUMENT", "INVALID_ARGUMENT"},
	http.StatusUnauthorized:        {"UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"},
	http.StatusForbidden:           {"PERMISSION_DENIED", "SENDER_ID_MISMATCH"},
	http.StatusNotFound:            {"NOT_FOUND", "UNREGISTERED"},
	http.StatusTooManyRequests:     {"RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"},
	http.StatusInternalServerError: {"INTERNAL", "INTERNAL"},
	http.StatusServiceUnavailable:  {"UNAVAILABLE", "UNAVAILABLE"},
}

// fcmError writes a google.rpc.Status error body, with an FcmError detail
// when errorCode is set, as FCM v1 does.
func fcmError(w http.ResponseWriter, status int, rpcStatus, errorCode, msg string) {
	e := map[string]any{"code": status, "message": msg, "status": rpcStatus}
	if errorCode != "" {
		e["details"] = []map[string]string{{
			"@type":     "type.googleapis.com/google.firebase.fcm.v1.FcmError",
			"errorCode": errorCode,
		}}
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

var ttlRE = regexp.MustCompile(`^\d+(\.\d{1,9})?s$`)

func (s *FCMServer) serveSend(w http.ResponseWriter, r *http.Request) {
	reject := func(status int, rpcStatus, errorCode, format string, args ...any) {
		msg := s.fail("fcm %s %s: "+format, append([]any{r.Method, r.URL.Path}, args...)...)
		fcmError(w, status, rpcStatus, errorCode, msg)
	}
	if r.Method != http.MethodPost {
		reject(http.StatusMethodNotAllowed, "INVALID_ARGUMENT", "", "method must be POST")
		return
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	at, known := s.tokens[bearer]
	s.mu.Unlock()
	if !ok || !known || time.Now().After(at.expires) {
		reject(http.StatusUnauthorized, "UNAUTHENTICATED", "", "Request had invalid authentication credentials: no live access token from /token")
		return
	}
	project := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/projects/"), "/messages:send")
	if project != s.project {
		reject(http.StatusForbidden, "PERMISSION_DENIED", "", "project %q, the fake serves %q", project, s.project)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		reject(http.StatusBadRequest, "INVALID_ARGUMENT", "", "read: %v", err)
		return
	}
	var req struct {
		ValidateOnly bool        `json:"validate_only"`
		Message      *FCMMessage `json:"message"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Message == nil {
		reject(http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid JSON payload received: %v", err)
		return
	}
	m := req.Message
	if err := checkFCMMessage(m); err != nil {
		reject(http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "%v", err)
		return
	}
	s.mu.Lock()
	gone := s.gone[m.Token]
	s.mu.Unlock()
	if gone {
		fcmError(w, http.StatusNotFound, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")
		return
	}
	if a, ok := s.scripted(m.Token); ok {
		st := fcmStatus[a.status]
		if st.status == "" {
			st.status = "UNKNOWN"
		}
		if a.reason != "" {
			st.code = a.reason
		}
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		fcmError(w, a.status, st.status, st.code, http.StatusText(a.status))
		return
	}
	name := fmt.Sprintf("projects/%s/messages/0:%d%s", s.project, time.Now().UnixNano(), randomHex(4))
	s.accept(func() {
		s.sends = append(s.sends, FCMSend{Project: project, Message: *m, Raw: body, ValidateOnly: req.ValidateOnly, Header: r.Header.Clone()})
	})
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]string{"name": name})
}

var reservedData = []string{"from", "notification", "message_type"}

func checkFCMMessage(m *FCMMessage) error {
	targets := 0
	for _, v := range []string{m.Token, m.Topic, m.Condition} {
		if v != "" {
			targets++
		}
	}
	if targets != 1 {
		return fmt.Errorf("exactly one of token, topic or condition must be set")
	}
	if m.Notification == nil && len(m.Data) == 0 {
		return fmt.Errorf("message has neither notification nor data")
	}
	size := 0
	for k, v := range m.Data {
		size += len(k) + len(v)
		for _, r := range reservedData {
			if k == r {
				return fmt.Errorf("data key %q is reserved", k)
			}
		}
		if strings.HasPrefix(k, "google.") || strings.HasPrefix(k, "gcm.") {
			return fmt.Errorf("data key %q uses a reserved prefix", k)
		}
	}
	if size > 4096 {
		return fmt.Errorf("Message is too big: %d bytes of data", size)
	}
	if a := m.Android; a != nil {
		switch strings.ToLower(a.Priority) {
		case "", "normal", "high":
		default:
			return fmt.Errorf("android.priority %q", a.Priority)
		}
		if a.TTL != "" && !ttlRE.MatchString(a.TTL) {
			return fmt.Errorf("android.ttl %q is not a duration like \"3600s\"", a.TTL)
		}
	}
	if wp := m.Webpush; wp != nil {
		if v, ok := wp.Headers["TTL"]; ok {
			if n, err := strconv.Atoi(v); err != nil || n < 0 {
				return fmt.Errorf("webpush TTL header %q", v)
			}
		}
		switch wp.Headers["Urgency"] {
		case "", "very-low", "low", "normal", "high":
		default:
			return fmt.Errorf("webpush Urgency header %q", wp.Headers["Urgency"])
		}
		if t, ok := wp.Headers["Topic"]; ok && !topicRE.MatchString(t) {
			return fmt.Errorf("webpush Topic header %q", t)
		}
		if l, ok := wp.FCMOptions["link"].(string); ok && !strings.HasPrefix(l, "https://") {
			return fmt.Errorf("webpush fcm_options.link %q must be https", l)
		}
	}
	if ap := m.APNS; ap != nil {
		if p, ok := ap.Headers["apns-priority"]; ok && p != "10" && p != "5" && p != "1" {
			return fmt.Errorf("apns-priority %q", p)
		}
		if len(ap.Headers["apns-collapse-id"]) > 64 {
			return fmt.Errorf("apns-collapse-id over 64 bytes")
		}
		if pt, ok := ap.Headers["apns-push-type"]; ok && !pushTypes[pt] {
			return fmt.Errorf("apns-push-type %q", pt)
		}
		if ap.Payload != nil {
			raw, err := json.Marshal(ap.Payload)
			if err != nil {
				return fmt.Errorf("apns payload: %v", err)
			}
			// FCM hands the payload to APNs, which checks it as it checks
			// its own pushes.
			if err := checkAPS(raw, ap.Headers["apns-push-type"]); err != nil {
				return fmt.Errorf("apns payload: %v", err)
			}
		}
	}
	return nil
}
