package loadgen

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// The load generator's WebSocket client is a minimal reader of its own:
// one goroutine and one small buffer per session, frames parsed in place.
// A general-purpose client costs several times the server's CPU per frame,
// and on a shared machine that cost would be counted as the server's
// latency.

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// wsClient is one client WebSocket.
type wsClient struct {
	conn net.Conn
	br   *bufio.Reader
	wmu  sync.Mutex // pongs and the close frame
}

// dialWS opens a WebSocket to rawURL (ws://) over d.
func dialWS(ctx context.Context, d *net.Dialer, rawURL string) (*wsClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 2048)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	resp.Body.Close()
	sum := sha1.Sum([]byte(key + wsGUID))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		conn.Close()
		return nil, fmt.Errorf("websocket handshake: status %d", resp.StatusCode)
	}
	_ = conn.SetDeadline(time.Time{})
	return &wsClient{conn: conn, br: br}, nil
}

// readMessages calls fn with each text or binary message (valid until fn
// returns) until the connection ends, answering pings on the way.
func (c *wsClient) readMessages(limit int, fn func([]byte)) error {
	var msg []byte
	var hdr [14]byte
	for {
		if _, err := io.ReadFull(c.br, hdr[:2]); err != nil {
			return err
		}
		fin, op := hdr[0]&0x80 != 0, hdr[0]&0x0f
		if hdr[1]&0x80 != 0 {
			return errors.New("websocket: masked frame from the server")
		}
		n := uint64(hdr[1] & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(c.br, hdr[2:4]); err != nil {
				return err
			}
			n = uint64(binary.BigEndian.Uint16(hdr[2:4]))
		case 127:
			if _, err := io.ReadFull(c.br, hdr[2:10]); err != nil {
				return err
			}
			n = binary.BigEndian.Uint64(hdr[2:10])
		}
		if n > uint64(limit) || len(msg)+int(n) > limit {
			return fmt.Errorf("websocket: message over %d bytes", limit)
		}
		start := len(msg)
		msg = append(msg, make([]byte, n)...)
		if _, err := io.ReadFull(c.br, msg[start:]); err != nil {
			return err
		}
		switch op {
		case 0x8: // close
			_ = c.writeFrame(0x8, msg[start:])
			return closeError(msg[start:])
		case 0x9: // ping
			_ = c.writeFrame(0xA, msg[start:])
			msg = msg[:start]
			continue
		case 0xA: // pong
			msg = msg[:start]
			continue
		}
		if fin {
			fn(msg)
			msg = msg[:0]
		}
	}
}

// writeFrame writes one masked frame: a control frame, cut to the 125
// bytes a control frame may carry, or a whole text message (op 0x1).
func (c *wsClient) writeFrame(op byte, payload []byte) error {
	if op >= 0x8 && len(payload) > 125 {
		payload = payload[:125]
	}
	b := make([]byte, 0, 14+len(payload))
	b = append(b, 0x80|op)
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	b = append(b, mask[:]...)
	for i, p := range payload {
		b = append(b, p^mask[i%4])
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write(b)
	return err
}

// closeError is what readMessages returns for a close frame: io.EOF, with
// the server's code and reason when it gave them (a server that refuses a
// session after the handshake says why only there).
func closeError(payload []byte) error {
	if len(payload) < 2 {
		return io.EOF
	}
	return fmt.Errorf("websocket: closed by the server: %d %q (%w)", binary.BigEndian.Uint16(payload), payload[2:], io.EOF)
}

func (c *wsClient) close() { _ = c.conn.Close() }
