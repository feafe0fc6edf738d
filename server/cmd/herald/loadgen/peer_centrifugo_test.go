package loadgen

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

const (
	fakeCFSecret = "fake-centrifugo-hmac-secret"
	fakeCFAPIKey = "fake-centrifugo-api-key"
)

// fakeCentrifugo speaks as much of Centrifugo v6's JSON protocol as the
// load tool uses: the connect command with an HS256 token whose channels
// claim subscribes the session, publish and broadcast behind X-API-Key,
// and pushes sent two to a WebSocket message, newline-separated, followed
// in the same message by a ping the client must answer.
type fakeCentrifugo struct {
	t *testing.T

	mu         sync.Mutex
	conns      map[string]*fakeCFConn // by channel
	subs       []string               // users that connected
	broadcasts [][]string             // channels of each broadcast

	published  atomic.Int64 // publish calls accepted
	pings      atomic.Int64
	pongs      atomic.Int64
	pairFrames atomic.Int64 // messages that carried two pushes
}

// fakeCFConn is one session: pushes wait here until there are two, or
// briefly, then go out in one message with a ping.
type fakeCFConn struct {
	c       *websocket.Conn
	mu      sync.Mutex
	pending [][]byte
	timer   *time.Timer
}

func newFakeCentrifugo(t *testing.T) (*fakeCentrifugo, *httptest.Server) {
	f := &fakeCentrifugo{t: t, conns: map[string]*fakeCFConn{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/connection/websocket", f.serveWS)
	mux.HandleFunc("POST /api/publish", f.serveAPI)
	mux.HandleFunc("POST /api/broadcast", f.serveAPI)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeCentrifugo) serveWS(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	ctx := r.Context()
	_, msg, err := c.Read(ctx)
	if err != nil {
		return
	}
	var cmd struct {
		ID      int `json:"id"`
		Connect *struct {
			Token string `json:"token"`
		} `json:"connect"`
	}
	if json.Unmarshal(msg, &cmd) != nil || cmd.ID != 1 || cmd.Connect == nil {
		f.t.Errorf("first message %q is not a connect command with id 1", msg)
		c.Close(3501, "bad request")
		return
	}
	user, channel, ok := checkCentrifugoToken(cmd.Connect.Token, []byte(fakeCFSecret))
	if !ok {
		c.Close(3500, "invalid token")
		return
	}
	fc := &fakeCFConn{c: c}
	f.mu.Lock()
	f.conns[channel] = fc
	f.subs = append(f.subs, user)
	f.mu.Unlock()
	reply := `{"id":1,"connect":{"client":"c-` + user + `","version":"fake","subs":{"` + channel + `":{}},"ping":25,"pong":true}}`
	if err := c.Write(ctx, websocket.MessageText, []byte(reply)); err != nil {
		return
	}
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if string(msg) != "{}" {
			f.t.Errorf("client sent %q, want only pongs {}", msg)
			continue
		}
		f.pongs.Add(1)
	}
}

// checkCentrifugoToken verifies an HS256 token by hand, independently of
// the library that signs it, and returns its subject and the personal
// channel it must name as its only channel.
func checkCentrifugoToken(tok string, secret []byte) (user, channel string, ok bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", "", false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		return "", "", false
	}
	var header struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Sub      string   `json:"sub"`
		Channels []string `json:"channels"`
		Exp      int64    `json:"exp"`
	}
	h, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	p, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil || json.Unmarshal(h, &header) != nil || json.Unmarshal(p, &claims) != nil {
		return "", "", false
	}
	if header.Alg != "HS256" || !strings.HasPrefix(claims.Sub, "lg") || claims.Exp < time.Now().Unix() ||
		len(claims.Channels) != 1 || claims.Channels[0] != "user:"+claims.Sub {
		return "", "", false
	}
	return claims.Sub, claims.Channels[0], true
}

func (f *fakeCentrifugo) serveAPI(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-API-Key") != fakeCFAPIKey {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var req struct {
		Channel  string          `json:"channel"`
		Channels []string        `json:"channels"`
		Data     json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || !bytes.Contains(req.Data, []byte(`"lgt":`)) {
		f.t.Errorf("%s: body %v, data %s without a stamp", r.URL.Path, err, req.Data)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	channels := req.Channels
	if r.URL.Path == "/api/publish" {
		channels = []string{req.Channel}
		f.published.Add(1)
	} else {
		f.mu.Lock()
		f.broadcasts = append(f.broadcasts, channels)
		f.mu.Unlock()
	}
	for _, ch := range channels {
		f.mu.Lock()
		fc := f.conns[ch]
		f.mu.Unlock()
		if fc != nil { // like Centrifugo, a channel nobody is on is not an error
			fc.push(f, []byte(`{"push":{"channel":"`+ch+`","pub":{"data":`+string(req.Data)+`}}}`))
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"result":{}}`))
}

func (fc *fakeCFConn) push(f *fakeCentrifugo, line []byte) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.pending = append(fc.pending, line)
	if len(fc.pending) == 2 {
		fc.flushLocked(f)
		return
	}
	if fc.timer == nil {
		fc.timer = time.AfterFunc(20*time.Millisecond, func() {
			fc.mu.Lock()
			defer fc.mu.Unlock()
			fc.flushLocked(f)
		})
	}
}

func (fc *fakeCFConn) flushLocked(f *fakeCentrifugo) {
	if fc.timer != nil {
		fc.timer.Stop()
		fc.timer = nil
	}
	if len(fc.pending) == 0 {
		return
	}
	if len(fc.pending) == 2 {
		f.pairFrames.Add(1)
	}
	msg := append(bytes.Join(fc.pending, []byte("\n")), "\n{}"...)
	fc.pending = fc.pending[:0]
	f.pings.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = fc.c.Write(ctx, websocket.MessageText, msg)
}

func centrifugoOptions(srv *httptest.Server, sessions int) Options {
	return Options{
		BaseURL: srv.URL, APIKey: fakeCFAPIKey, Sessions: sessions, Peer: PeerCentrifugo, Timeout: 30 * time.Second,
		MintToken: func(user string) (string, error) {
			return CentrifugoToken([]byte(fakeCFSecret), user, time.Hour)
		},
	}
}

// waitFor polls cond for up to two seconds: a pong is written after the
// frame it answers has been counted.
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestCentrifugoUnicastCountsEveryBatchedPushAndAnswersPings: one session
// gets every publish; the fake sends them two to a message with a ping,
// so a client that read only a message's first line would count half.
func TestCentrifugoUnicastCountsEveryBatchedPushAndAnswersPings(t *testing.T) {
	f, srv := newFakeCentrifugo(t)
	const messages = 6
	res, err := Unicast(context.Background(), UnicastOptions{Options: centrifugoOptions(srv, 1), Messages: messages, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != messages || res.Delivered != messages || res.SendErrors != 0 {
		t.Fatalf("sent %d, delivered %d, send errors %d; want %d, %d, 0", res.Sent, res.Delivered, res.SendErrors, messages, messages)
	}
	if res.Peer != PeerCentrifugo {
		t.Fatalf("result names peer %q: saved results would not say which server they measured", res.Peer)
	}
	if f.published.Load() != messages {
		t.Fatalf("%d publish calls, want %d", f.published.Load(), messages)
	}
	if f.pairFrames.Load() == 0 {
		t.Fatal("no message carried two pushes: the test did not exercise batching")
	}
	if res.Latency.Max <= 0 {
		t.Fatalf("latency %+v: send stamps not read from the pushes", res.Latency)
	}
	if !waitFor(func() bool { return f.pongs.Load() == f.pings.Load() }) {
		t.Fatalf("%d pings answered with %d pongs", f.pings.Load(), f.pongs.Load())
	}
}

// TestCentrifugoFanoutBroadcastsToEveryPersonalChannel: each round is one
// broadcast naming every session's channel, and every round completes.
func TestCentrifugoFanoutBroadcastsToEveryPersonalChannel(t *testing.T) {
	f, srv := newFakeCentrifugo(t)
	const sessions, rounds = 5, 2
	res, err := Fanout(context.Background(), FanoutOptions{Options: centrifugoOptions(srv, sessions), Rounds: rounds})
	if err != nil {
		t.Fatal(err)
	}
	if res.Incomplete != 0 || res.LastFrame.Max <= 0 {
		t.Fatalf("%d incomplete rounds, last frame %+v", res.Incomplete, res.LastFrame)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	want := []string{"user:lg0", "user:lg1", "user:lg2", "user:lg3", "user:lg4"}
	if len(f.broadcasts) != rounds {
		t.Fatalf("%d broadcasts, want %d", len(f.broadcasts), rounds)
	}
	for _, chs := range f.broadcasts {
		if !slices.Equal(slices.Sorted(slices.Values(chs)), want) {
			t.Fatalf("broadcast to %v, want %v", chs, want)
		}
	}
	if got := slices.Sorted(slices.Values(f.subs)); !slices.Equal(got, []string{"lg0", "lg1", "lg2", "lg3", "lg4"}) {
		t.Fatalf("sessions connected as %v", got)
	}
	if f.published.Load() != 0 {
		t.Fatalf("%d publish calls in a fan-out run", f.published.Load())
	}
}

// TestCentrifugoRefusals: a wrong secret or key is reported, not counted,
// and what the peer does not offer is refused up front.
func TestCentrifugoRefusals(t *testing.T) {
	_, srv := newFakeCentrifugo(t)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		run  func(o Options) error
		want string
	}{
		{"wrong jwt secret", func(o Options) error {
			o.MintToken = func(user string) (string, error) { return CentrifugoToken([]byte("not-the-secret"), user, time.Hour) }
			_, err := Idle(ctx, o)
			return err
		}, "3500"},
		{"wrong api key", func(o Options) error {
			o.APIKey = "wrong"
			_, err := Fanout(ctx, FanoutOptions{Options: o, Rounds: 1})
			return err
		}, "status 401"},
		{"sse", func(o Options) error {
			o.Transport = "sse"
			_, err := Idle(ctx, o)
			return err
		}, "only ws"},
		{"ingest", func(o Options) error {
			_, err := Ingest(ctx, IngestOptions{Options: o, Provider: "herald", Secret: "x", Messages: 1})
			return err
		}, "not supported"},
		{"unknown peer", func(o Options) error {
			o.Peer = "nats"
			_, err := Idle(ctx, o)
			return err
		}, `peer "nats"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.run(centrifugoOptions(srv, 2))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}
