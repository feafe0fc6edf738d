// Command probe replays, black box, the attacks the hardening issue
// reported against a running node on loopback, and prints what the node
// did: stalled request bodies, an ack flood, one token opening many
// WebSockets, one user registering many devices. Each probe is bounded
// in count and time.
//
//	go run ./scripts/probe <host:port> <jwt secret> <api key> <node pid> slowbody|ackflood|sessions|devices
//
// slowbody needs HERALD_TALKJS_SECRET set on the node (any value).
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

var base, addr, secret, apiKey string

func mint(user, sid string) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	c, _ := json.Marshal(map[string]any{"sub": user, "sid": sid, "exp": time.Now().Add(time.Hour).Unix()})
	p := base64.RawURLEncoding.EncodeToString(c)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(h + "." + p))
	return h + "." + p + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func rss(pid string) string {
	b, _ := os.ReadFile("/proc/" + pid + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "?"
}

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: probe <host:port> <jwt secret> <api key> <node pid> slowbody|ackflood|sessions|devices")
		os.Exit(2)
	}
	addr, secret, apiKey = os.Args[1], os.Args[2], os.Args[3]
	if host, _, err := net.SplitHostPort(addr); err != nil || !net.ParseIP(host).IsLoopback() {
		fmt.Fprintln(os.Stderr, "probe: only a loopback address (127.0.0.0/8) is probed")
		os.Exit(2)
	}
	pid := os.Args[4]
	base = "http://" + addr
	switch os.Args[5] {
	case "slowbody":
		fmt.Println("RSS before:", rss(pid))
		var conns []net.Conn
		chunk := bytes.Repeat([]byte("a"), 900<<10)
		for i := 0; i < 100; i++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				fmt.Println("dial:", err)
				continue
			}
			fmt.Fprintf(c, "POST /webhooks/talkjs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 1<<20)
			c.Write(chunk)
			conns = append(conns, c)
		}
		time.Sleep(2 * time.Second)
		fmt.Println("RSS with 100 stalled 1 MiB bodies:", rss(pid))
		start := time.Now()
		var closed atomic.Int32
		var wg sync.WaitGroup
		status := map[string]int{}
		var mu sync.Mutex
		for _, c := range conns {
			wg.Add(1)
			go func(c net.Conn) {
				defer wg.Done()
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				b, _ := io.ReadAll(c)
				line, _, _ := strings.Cut(string(b), "\r\n")
				mu.Lock()
				status[line]++
				mu.Unlock()
				closed.Add(1)
			}(c)
		}
		wg.Wait()
		fmt.Printf("all %d closed by the server after %.1fs: %v\n", closed.Load(), time.Since(start).Seconds()+2, status)
		time.Sleep(2 * time.Second)
		fmt.Println("RSS after:", rss(pid))
	case "ackflood":
		// bob: one WS session; a notification to him; he acks it over WS.
		ctx := context.Background()
		bob, _, err := websocket.Dial(ctx, "ws://"+addr+"/v1/ws?token="+mint("bob", "s-bob"), nil)
		if err != nil {
			panic(err)
		}
		go func() {
			for {
				_, data, err := bob.Read(ctx)
				if err != nil {
					return
				}
				var f struct {
					Type         string
					Notification struct{ ID string }
				}
				json.Unmarshal(data, &f)
				if f.Type == "notification" {
					bob.Write(ctx, websocket.MessageText, []byte(`{"type":"ack","id":"`+f.Notification.ID+`"}`))
				}
			}
		}()
		var ok, limited atomic.Int64
		stop := make(chan struct{})
		mal := mint("mallory", "s-m")
		ids := make([]string, 1000)
		for i := range ids {
			ids[i] = fmt.Sprintf("fake-%d", i)
		}
		body, _ := json.Marshal(map[string]any{"ids": ids})
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					req, _ := http.NewRequest("POST", base+"/v1/ack", bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+mal)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 429 {
						limited.Add(1)
					} else {
						ok.Add(1)
					}
				}
			}()
		}
		time.Sleep(500 * time.Millisecond)
		req, _ := http.NewRequest("POST", base+"/v1/notifications", strings.NewReader(`{"to":["bob"],"title":"for bob"}`))
		req.Header.Set("Authorization", "Bearer "+apiKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		time.Sleep(4500 * time.Millisecond)
		close(stop)
		wg.Wait()
		fmt.Printf("5 s of ack flood: %d accepted, %d refused with 429\n", ok.Load(), limited.Load())
	case "sessions":
		ctx := context.Background()
		tok := mint("alice", "s-a")
		var open, closed4008 atomic.Int32
		var conns []*websocket.Conn
		for i := 0; i < 150; i++ {
			c, _, err := websocket.Dial(ctx, "ws://"+addr+"/v1/ws?token="+tok, nil)
			if err != nil {
				fmt.Println("dial", i, err)
				continue
			}
			conns = append(conns, c)
			go func() {
				_, _, err := c.Read(ctx)
				if websocket.CloseStatus(err) == 4008 {
					closed4008.Add(1)
				}
			}()
		}
		time.Sleep(2 * time.Second)
		req, _ := http.NewRequest("GET", base+"/v1/users/alice/presence", nil)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(resp.Body)
		open.Store(int32(len(conns)))
		resp.Body.Close()
		fmt.Printf("150 WebSockets of one token: %d opened, %d closed with 4008, presence %s", open.Load(), closed4008.Load(), b)
		for _, c := range conns {
			c.CloseNow()
		}
	case "devices":
		tok := mint("carol", "s-c")
		codes := map[int]int{}
		for i := 0; i < 30; i++ {
			body := fmt.Sprintf(`{"platform":"fcm","token":"tok-%d-abcdefghijklmnop"}`, i)
			req, _ := http.NewRequest("POST", base+"/v1/devices", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				panic(err)
			}
			resp.Body.Close()
			codes[resp.StatusCode]++
		}
		fmt.Println("30 FCM registrations of one user:", codes)
	default:
		fmt.Fprintln(os.Stderr, "probe: unknown probe", os.Args[5])
		os.Exit(2)
	}
}
