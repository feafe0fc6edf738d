// Command floor is the least a Go server built on net/http and
// coder/websocket can do per notification: it speaks just enough of Herald's
// API for `herald bench idle|unicast|fanout --transport ws` to drive it, and
// does nothing else. No token check, no history, no cursors, no acks, no
// fallback: a POST to /v1/notifications writes one frame to each named
// user's WebSocket and answers 202.
//
// It exists to measure what this machine and the load tool allow before any
// product work is done, so Herald's own figures can be read against it:
//
//	go run ./scripts/bench/floor -addr 127.0.0.1:18095 &
//	herald bench unicast --server http://127.0.0.1:18095 --jwt-secret any-secret-at-least-32-bytes-long \
//	    --api-key x --sessions 10000 --messages 40000 --rate 0 --workers 64 --pid $!
//
// It is a measuring instrument for loopback runs only, never a server to
// deploy.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/coder/websocket"
)

// shard keeps the connections of a part of the users, so connects and sends
// for different users do not share one lock.
type shard struct {
	mu    sync.Mutex
	conns map[string][]*websocket.Conn
}

type floor struct {
	shards [64]shard
}

func (f *floor) shard(user string) *shard {
	var h uint32 = 2166136261
	for i := 0; i < len(user); i++ {
		h = (h ^ uint32(user[i])) * 16777619
	}
	return &f.shards[h%uint32(len(f.shards))]
}

// subject reads the "sub" claim of a JWT without checking its signature: the
// floor measures transport, and a check costs once per connection anyway.
func subject(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(raw, &claims) != nil {
		return ""
	}
	return claims.Sub
}

func (f *floor) serveWS(w http.ResponseWriter, r *http.Request) {
	user := subject(r.URL.Query().Get("token"))
	if user == "" {
		http.Error(w, "token", http.StatusUnauthorized)
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	s := f.shard(user)
	s.mu.Lock()
	s.conns[user] = append(s.conns[user], c)
	s.mu.Unlock()
	// The handler goroutine is the reader, as in Herald: it answers pings
	// and notices the close.
	for {
		if _, _, err := c.Read(context.Background()); err != nil {
			break
		}
	}
	s.mu.Lock()
	list := s.conns[user]
	for i, x := range list {
		if x == c {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.conns, user)
	} else {
		s.conns[user] = list
	}
	s.mu.Unlock()
}

type request struct {
	To   []string        `json:"to"`
	Data json.RawMessage `json:"data"`
}

func (f *floor) serveSend(w http.ResponseWriter, r *http.Request) {
	var req request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	frame := make([]byte, 0, 96+len(req.Data))
	frame = append(frame, `{"type":"notification","notification":{"data":`...)
	frame = append(frame, req.Data...)
	frame = append(frame, "}}"...)
	for _, user := range req.To {
		s := f.shard(user)
		s.mu.Lock()
		conns := append([]*websocket.Conn(nil), s.conns[user]...)
		s.mu.Unlock()
		for _, c := range conns {
			_ = c.Write(r.Context(), websocket.MessageText, frame)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"recipients":` + strconv.Itoa(len(req.To)) + `}`))
}

// newHandler returns the floor's routes.
func newHandler() http.Handler {
	f := &floor{}
	for i := range f.shards {
		f.shards[i].conns = make(map[string][]*websocket.Conn)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", f.serveWS)
	mux.HandleFunc("POST /v1/notifications", f.serveSend)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	return mux
}

func main() {
	addr := flag.String("addr", "127.0.0.1:18095", "listen address (loopback)")
	flag.Parse()
	log.Printf("floor listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, newHandler()))
}
