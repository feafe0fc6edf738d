package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/heraldhq/herald/web"
)

// webAsset is one embedded browser file, read once, with its strong ETag.
type webAsset struct {
	body        []byte
	etag        string
	contentType string
	cache       string
	header      map[string]string
}

// webAssets are read on first use; the files are embedded and never change
// while the process runs.
var webAssets = sync.OnceValue(func() map[string]*webAsset {
	// Unversioned URLs: browsers revalidate every time (a 304 costs one
	// round trip) so a new release is picked up at once.
	const revalidate = "no-cache"
	// The client is public and meant to be imported by apps on other
	// origins (import { Herald } from 'https://herald…/herald.js'): a
	// module script from another origin loads only with CORS. No
	// credentials are involved, so "*" is enough.
	const anyOrigin = "*"
	files := map[string]*webAsset{
		"/herald.js": {contentType: "text/javascript; charset=utf-8", cache: revalidate, header: map[string]string{"Access-Control-Allow-Origin": anyOrigin}},
		// The modules herald.js imports, beside it.
		"/herald-util.js":    {contentType: "text/javascript; charset=utf-8", cache: revalidate, header: map[string]string{"Access-Control-Allow-Origin": anyOrigin}},
		"/herald-storage.js": {contentType: "text/javascript; charset=utf-8", cache: revalidate, header: map[string]string{"Access-Control-Allow-Origin": anyOrigin}},
		"/herald-toast.js":   {contentType: "text/javascript; charset=utf-8", cache: revalidate, header: map[string]string{"Access-Control-Allow-Origin": anyOrigin}},
		"/herald.d.ts":       {contentType: "text/plain; charset=utf-8", cache: revalidate, header: map[string]string{"Access-Control-Allow-Origin": anyOrigin}},
		"/herald-sw.js": {contentType: "text/javascript; charset=utf-8", cache: revalidate, header: map[string]string{
			"Service-Worker-Allowed": "/", "Access-Control-Allow-Origin": anyOrigin,
		}},
		"/demo.js":              {contentType: "text/javascript; charset=utf-8", cache: revalidate},
		"/manifest.webmanifest": {contentType: "application/manifest+json", cache: revalidate},
		"/icon-192.png":         {contentType: "image/png", cache: revalidate},
		"/icon-512.png":         {contentType: "image/png", cache: revalidate},
		"/favicon.svg":          {contentType: "image/svg+xml", cache: revalidate},
		"/index.html": {contentType: "text/html; charset=utf-8", cache: revalidate, header: map[string]string{
			"Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; frame-ancestors 'none'",
		}},
	}
	for name, a := range files {
		b, err := fs.ReadFile(web.Assets(), name[1:])
		if err != nil {
			panic("web asset missing from the embedded files: " + name)
		}
		sum := sha256.Sum256(b)
		a.body, a.etag = b, `"`+hex.EncodeToString(sum[:12])+`"`
	}
	return files
})

// webRoutes serves the browser side: the client library, its type
// declarations, the service worker and, in demo mode, the demo page with
// its development helpers; otherwise / is a plain-text index.
func (s *Server) webRoutes(r *mux.Router) {
	for _, p := range []string{"/herald.js", "/herald-util.js", "/herald-storage.js", "/herald-toast.js", "/herald.d.ts", "/herald-sw.js", "/favicon.svg"} {
		r.Handle(p, serveAsset(p)).Methods(http.MethodGet, http.MethodHead)
	}
	if !s.cfg.Demo {
		r.HandleFunc("/", s.handleIndex).Methods(http.MethodGet)
		return
	}
	r.Handle("/", serveAsset("/index.html")).Methods(http.MethodGet, http.MethodHead)
	// The demo page is an installable web app: iOS shows Web Push only
	// to one opened from the Home Screen.
	for _, p := range []string{"/demo.js", "/manifest.webmanifest", "/icon-192.png", "/icon-512.png"} {
		r.Handle(p, serveAsset(p)).Methods(http.MethodGet, http.MethodHead)
	}
	s.demoRoutes(r)
}

func serveAsset(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := webAssets()[name]
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", a.cache)
		h.Set("ETag", a.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		for k, v := range a.header {
			h.Set(k, v)
		}
		// ServeContent answers If-None-Match with 304 and handles HEAD
		// and ranges.
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}

func (s *Server) handleIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("Herald notification hub\n\n" +
		"  GET  /v1/ws, /v1/sse       live notifications (user token)\n" +
		"  GET  /v1/notifications     inbox (user token)\n" +
		"  POST /v1/ack               acks (user token)\n" +
		"  POST /v1/notifications     send (API key)\n" +
		"  GET  /herald.js            browser client (herald.d.ts: its types)\n" +
		"  GET  /herald-sw.js         service worker for Web Push\n" +
		"  GET  /healthz /readyz /metrics\n"))
}
