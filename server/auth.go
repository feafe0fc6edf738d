package server

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/heraldhq/herald/pkg/token"
)

type ctxKey int

const claimsKey ctxKey = 1

// tokenVerifier checks user JWTs.
type tokenVerifier interface {
	Verify(ctx context.Context, raw string) (token.Claims, error)
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// requireUser authenticates a user token from the Authorization header, or
// from ?token= where browser APIs (EventSource, WebSocket) cannot set one.
func (s *Server) requireUser(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw := bearer(r)
		if raw == "" {
			raw = r.URL.Query().Get("token")
		}
		if raw == "" {
			writeError(w, errUnauthorized)
			return
		}
		if s.apiKey != "" && token.APIKeyEqual(raw, s.apiKey) {
			writeError(w, codeForbidden.with("the API key is not a user token"))
			return
		}
		claims, err := s.verifier.Verify(r.Context(), raw)
		if err != nil {
			writeError(w, errInvalidToken)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), claimsKey, claims)))
	}
}

func userClaims(r *http.Request) token.Claims {
	c, _ := r.Context().Value(claimsKey).(token.Claims)
	return c
}

// requireAPIKey authenticates the server-to-server API.
func (s *Server) requireAPIKey(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw := bearer(r)
		if raw == "" || s.apiKey == "" || !token.APIKeyEqual(raw, s.apiKey) {
			if raw != "" {
				if _, err := s.verifier.Verify(r.Context(), raw); err == nil {
					writeError(w, codeForbidden.with("user tokens cannot call the server API"))
					return
				}
			}
			writeError(w, errUnauthorized)
			return
		}
		next(w, r)
	}
}

// originAllowed implements the cross-site check for live transports and
// CORS: requests without an Origin (non-browser clients) and same-origin
// requests pass; others must be listed in HERALD_ALLOWED_ORIGINS ("*" for
// any).
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(strings.TrimRight(o, "/"), origin) {
			return true
		}
	}
	return false
}

// cors answers preflights and sets CORS headers for allowed origins on the
// user endpoints a browser app calls from another origin.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && s.originAllowed(r) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Allow-Credentials", "true")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
