package server

import (
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/heraldhq/herald/pkg/push"
	"github.com/heraldhq/herald/pkg/push/safedial"
)

// Limits on device registrations.
const (
	maxDeviceBody  = 16 << 10
	maxFCMTokenLen = 1024 // FCM tokens are about 160 characters today
	maxLabelLen    = 128
	maxLocaleLen   = 35
	maxEndpointLen = 2048
	maxScopeLen    = 2048
)

type deviceRequest struct {
	Platform     string `json:"platform"`
	Subscription *struct {
		Endpoint string `json:"endpoint"`
		Keys     struct {
			P256dh string `json:"p256dh"`
			Auth   string `json:"auth"`
		} `json:"keys"`
	} `json:"subscription"`
	// Scope is the service worker registration's scope (herald.js sends
	// it): with it the device gets declarative push messages.
	Scope  string `json:"scope"`
	Token  string `json:"token"`
	Locale string `json:"locale"`
	Label  string `json:"label"`
}

// deviceView is a device as GET /v1/devices shows it: never its keys or
// token, only where it points.
type deviceView struct {
	ID       string    `json:"id"`
	Platform string    `json:"platform"`
	Host     string    `json:"host,omitempty"`
	Scope    string    `json:"scope,omitempty"`
	Label    string    `json:"label,omitempty"`
	Locale   string    `json:"locale,omitempty"`
	Current  bool      `json:"current_session"`
	Created  time.Time `json:"created_at"`
}

var deviceIDEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// deviceID derives a device's id from what identifies it at its push
// service, so registering the same subscription again finds it.
func deviceID(platform, target string) string {
	sum := sha256.Sum256([]byte(platform + "\x00" + target))
	return "dev_" + deviceIDEncoding.EncodeToString(sum[:16])
}

func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// validP256dh reports whether s is a base64url uncompressed P-256 point
// that lies on the curve (what a browser's subscription holds); a point
// off the curve would fail every send.
func validP256dh(s string) bool {
	k, err := decodeB64URL(s)
	if err != nil || len(k) != 65 || k[0] != 4 {
		return false
	}
	_, err = ecdh.P256().NewPublicKey(k)
	return err == nil
}

// validFCMToken reports whether s looks like an FCM registration token:
// letters, digits, '-', '_', ':' and '.', of a sane length.
func validFCMToken(s string) bool {
	if s == "" || len(s) > maxFCMTokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == ':' || c == '.') {
			return false
		}
	}
	return true
}

// checkScope accepts what a browser reports as a service worker scope: an
// absolute http(s) URL. A click on a declarative notification opens a page
// under it, so nothing else may be stored.
func checkScope(scope string) error {
	if len(scope) > maxScopeLen {
		return fmt.Errorf("longer than %d bytes", maxScopeLen)
	}
	u, err := url.Parse(scope)
	if err != nil || !u.IsAbs() || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return errors.New("must be the service worker's scope, an absolute http(s) URL")
	}
	return nil
}

// handleVAPIDKey is GET /v1/push/vapid-public-key.
func (s *Server) handleVAPIDKey(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"publicKey": s.push.vapidKey})
}

// handleRegisterDevice is POST /v1/devices.
func (s *Server) handleRegisterDevice(w http.ResponseWriter, r *http.Request) error {
	var req deviceRequest
	if err := decodeJSON(w, r, maxDeviceBody, &req); err != nil {
		return err
	}
	claims := userClaims(r)
	d := push.Device{User: claims.Subject, Platform: req.Platform, Session: claims.SessionID, Created: time.Now().UTC()}
	if len(req.Label) > maxLabelLen {
		return invalidField("label", "too long")
	}
	if len(req.Locale) > maxLocaleLen {
		return invalidField("locale", "too long")
	}
	d.Label, d.Locale = req.Label, req.Locale
	var target string
	switch req.Platform {
	case push.PlatformWebPush:
		sub := req.Subscription
		if sub == nil || sub.Endpoint == "" {
			return invalidField("subscription.endpoint", "required")
		}
		if len(sub.Endpoint) > maxEndpointLen {
			return invalidField("subscription.endpoint", "too long")
		}
		// The URL's shape only: its name is resolved and checked when
		// dialled, so a DNS hiccup now cannot refuse a good subscription.
		if err := safedial.CheckEndpoint(sub.Endpoint, s.push.allowPriv); err != nil {
			return invalidField("subscription.endpoint", err.Error())
		}
		if !validP256dh(sub.Keys.P256dh) {
			return invalidField("subscription.keys.p256dh", "must be an uncompressed point on P-256, base64url")
		}
		if a, err := decodeB64URL(sub.Keys.Auth); err != nil || len(a) != 16 {
			return invalidField("subscription.keys.auth", "must be 16 bytes, base64url")
		}
		if req.Scope != "" {
			if err := checkScope(req.Scope); err != nil {
				return invalidField("scope", err.Error())
			}
		}
		d.Endpoint, d.P256dh, d.Auth, d.Scope = sub.Endpoint, sub.Keys.P256dh, sub.Keys.Auth, req.Scope
		target = sub.Endpoint
	case push.PlatformFCM:
		if !validFCMToken(req.Token) {
			return invalidField("token", fmt.Sprintf("an FCM registration token is required: 1-%d letters, digits, '-', '_', ':' or '.'", maxFCMTokenLen))
		}
		d.Token, target = req.Token, req.Token
	case push.PlatformAPNs:
		tok := strings.ToLower(req.Token)
		if _, err := hex.DecodeString(tok); err != nil || len(tok) < 64 || len(tok) > 200 {
			return invalidField("token", "an APNs device token (hex) is required")
		}
		d.Token, target = tok, tok
	default:
		return invalidField("platform", "must be webpush, fcm or apns")
	}
	d.ID = deviceID(d.Platform, target)
	created, err := s.backends.push.RegisterDevice(r.Context(), &d, s.cfg.MaxDevicesPerUser)
	if errors.Is(err, push.ErrTooManyDevices) {
		return codeTooManyDevices.with(
			fmt.Sprintf("this user has %d push devices, the most allowed; remove one first", s.cfg.MaxDevicesPerUser))
	}
	if err != nil {
		s.log.Warn("device registration failed", "err", err)
		return errUnavailable
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, map[string]string{"id": d.ID})
	return nil
}

// handleListDevices is GET /v1/devices: the token's user's devices.
func (s *Server) handleListDevices(w http.ResponseWriter, r *http.Request) error {
	claims := userClaims(r)
	devs, err := s.backends.push.Devices(r.Context(), claims.Subject)
	if err != nil {
		return errUnavailable
	}
	out := make([]deviceView, 0, len(devs))
	for _, d := range devs {
		v := deviceView{ID: d.ID, Platform: d.Platform, Scope: d.Scope, Label: d.Label, Locale: d.Locale, Created: d.Created,
			Current: d.Session != "" && d.Session == claims.SessionID}
		if u, err := url.Parse(d.Endpoint); err == nil {
			v.Host = u.Host
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
	return nil
}

// handleDeleteDevice is DELETE /v1/devices/{id}.
func (s *Server) handleDeleteDevice(w http.ResponseWriter, r *http.Request) error {
	n, err := s.backends.push.DeleteDevices(r.Context(), userClaims(r).Subject, []string{mux.Vars(r)["id"]}, "")
	if err != nil {
		return errUnavailable
	}
	if n == 0 {
		return errNotFound
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleLogoutDevices is DELETE /v1/devices: removes the devices the
// token's session registered (call it on logout).
func (s *Server) handleLogoutDevices(w http.ResponseWriter, r *http.Request) error {
	claims := userClaims(r)
	if claims.SessionID == "" {
		return codeNoSession.with("the token has no sid or jti claim naming its session")
	}
	n, err := s.backends.push.DeleteDevices(r.Context(), claims.Subject, nil, claims.SessionID)
	if err != nil {
		return errUnavailable
	}
	writeJSON(w, http.StatusOK, map[string]int{"removed": n})
	return nil
}
