package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A Centrifugo (v6) server can be driven as a peer of Herald, with the same
// sessions, WebSocket client, poster, latency recording and CPU accounting,
// so the two are measured side by side by one tool on one machine. Only
// what is said on the wire differs:
//
//	session i   user "lg<i>", subscribed by the server to "user:lg<i>",
//	            named in the channels claim of its connection token (the
//	            namespace "user" must be declared in the server's config)
//	open        WebSocket /connection/websocket, the connect command, and
//	            the connect reply: the session counts as open on the reply
//	unicast     POST /api/publish to the user's channel
//	fan-out     POST /api/broadcast to every user's channel, one call
//	delivery    a publication push carrying the send stamp
//
// Centrifugo answers an API call it refuses with 200 and an error in the
// body unless its http_api.error_mode is "transport"; the poster reads
// statuses only, so run it in that mode to have refusals counted.

// PeerCentrifugo names Centrifugo in Options.Peer.
const PeerCentrifugo = "centrifugo"

// checkPeer refuses a peer the tool does not speak, and what a peer does
// not offer.
func (o *Options) checkPeer() error {
	switch o.Peer {
	case "":
		return nil
	case PeerCentrifugo:
		if o.Transport != "ws" {
			return fmt.Errorf("loadgen: peer %s: transport %q: only ws is supported", o.Peer, o.Transport)
		}
		return nil
	}
	return fmt.Errorf("loadgen: peer %q: want %q or none (Herald)", o.Peer, PeerCentrifugo)
}

// centrifugoChannel is the personal channel of user.
func centrifugoChannel(user string) string { return "user:" + user }

// CentrifugoToken returns a connection token for user: HS256 signed with
// the server's client.token.hmac_secret_key, sub the user, the user's
// personal channel in the channels claim, expiring after ttl.
func CentrifugoToken(secret []byte, user string, ttl time.Duration) (string, error) {
	claims := jwt.MapClaims{
		"sub":      user,
		"channels": []string{centrifugoChannel(user)},
		"exp":      time.Now().Add(ttl).Unix(),
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("loadgen: centrifugo token: %w", err)
	}
	return tok, nil
}

// centrifugoPing is both the server's ping and the client's pong.
var centrifugoPing = []byte("{}")

// openCentrifugo opens one session: the WebSocket, the connect command,
// and its reply. Every message is read as newline-separated replies and
// pushes, as the server batches them.
func openCentrifugo(ctx context.Context, o *Options, d *net.Dialer, tok string, onFrame frameFunc) (*session, error) {
	u := "ws" + strings.TrimPrefix(o.BaseURL, "http") + "/connection/websocket"
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := dialWS(dctx, d, u)
	if err != nil {
		return nil, fmt.Errorf("dial ws: %w", err)
	}
	connected := make(chan error, 1)
	go func() {
		replied := false
		err := c.readMessages(1<<20, func(msg []byte) {
			for len(msg) > 0 {
				var line []byte
				line, msg, _ = bytes.Cut(msg, []byte{'\n'})
				switch {
				case bytes.Equal(line, centrifugoPing):
					_ = c.writeFrame(0x1, centrifugoPing)
				case bytes.HasPrefix(line, []byte(`{"push":`)):
					if onFrame != nil && bytes.Contains(line, []byte(`"pub":`)) {
						onFrame(time.Now(), parseStamp(line))
					}
				case !replied && bytes.HasPrefix(line, []byte(`{"id":1,`)):
					replied = true
					connected <- connectReplyError(line)
				}
			}
		})
		if !replied {
			connected <- fmt.Errorf("connection ended before the connect reply: %w", err)
		}
	}()
	cmd := `{"id":1,"connect":{"token":"` + tok + `"}}`
	if err := c.writeFrame(0x1, []byte(cmd)); err != nil {
		c.close()
		return nil, fmt.Errorf("centrifugo connect: %w", err)
	}
	select {
	case err = <-connected:
	case <-dctx.Done():
		err = fmt.Errorf("no reply: %w", dctx.Err())
	}
	if err != nil {
		c.close()
		return nil, fmt.Errorf("centrifugo connect: %w", err)
	}
	return &session{close: c.close}, nil
}

// connectReplyError returns the error a connect reply carries, if any.
func connectReplyError(line []byte) error {
	var reply struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(line, &reply); err != nil {
		return fmt.Errorf("connect reply: %w", err)
	}
	if reply.Error != nil {
		return fmt.Errorf("refused: %d %s", reply.Error.Code, reply.Error.Message)
	}
	return nil
}

// postCentrifugo sends what postNotification sends Herald, with the same
// stamp: a publish to one user's channel, a broadcast to several.
func postCentrifugo(ctx context.Context, p *poster, o *Options, to []string) error {
	path, field := "/api/publish", "channel"
	var channels []byte
	if len(to) == 1 {
		channels, _ = json.Marshal(centrifugoChannel(to[0]))
	} else {
		names := make([]string, len(to))
		for i, user := range to {
			names[i] = centrifugoChannel(user)
		}
		path, field = "/api/broadcast", "channels"
		channels, _ = json.Marshal(names)
	}
	body := fmt.Appendf(nil, `{%q:%s,"data":{"title":"load","body":"generated","data":{"lgt":%d}}}`, field, channels, time.Now().UnixNano())
	header := []byte("X-API-Key: " + o.APIKey + "\r\nContent-Type: application/json\r\n")
	status, err := p.post(ctx, path, header, body)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("centrifugo send: status %d", status)
	}
	return nil
}
