package server

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// redactedQuery returns the query string with credentials replaced, so
// tokens passed in URLs never reach the logs. Names are matched in any
// casing and by what they contain (?Token=, ?id_token=, ?apiKey=), since a
// client's spelling is not ours to choose.
func redactedQuery(u *url.URL) string {
	if u.RawQuery == "" {
		return ""
	}
	q := u.Query()
	for k := range q {
		if credentialName(k) {
			q[k] = []string{"REDACTED"}
		}
	}
	return q.Encode()
}

// credentialName reports whether a query parameter's name suggests a
// credential.
func credentialName(name string) bool {
	n := strings.ToLower(name)
	for _, part := range []string{"token", "key", "secret", "password", "passwd", "auth", "signature", "sig", "jwt"} {
		if strings.Contains(n, part) {
			return true
		}
	}
	return false
}

// statusRecorder remembers the status for the access log while keeping the
// optional interfaces live transports need.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if r.status == 0 {
		r.status = http.StatusSwitchingProtocols
	}
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// accessLog logs one line per request at debug level (long-lived streams
// log when they end), with credentials redacted.
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !log.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		log.Debug("http request", "method", r.Method, "path", r.URL.Path, "query", redactedQuery(r.URL),
			"status", rec.status, "duration", time.Since(start), "remote", r.RemoteAddr)
	})
}
