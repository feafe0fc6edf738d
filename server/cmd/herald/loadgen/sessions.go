package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// frameFunc sees every notification a session receives: the receive time
// and the send time stamped into the notification's data (zero if absent).
type frameFunc func(recv time.Time, sent int64)

// session is one open live connection.
type session struct {
	close func()
}

// stampKey is the data field the load generator stamps send times into.
const stampKey = `"lgt":`

func parseStamp(frame []byte) int64 {
	i := bytes.Index(frame, []byte(stampKey))
	if i < 0 {
		return 0
	}
	j := i + len(stampKey)
	k := j
	for k < len(frame) && frame[k] >= '0' && frame[k] <= '9' {
		k++
	}
	v, _ := strconv.ParseInt(string(frame[j:k]), 10, 64)
	return v
}

// openSessions opens o.Sessions sessions, a bounded number at a time, and
// returns them with the time it took.
func openSessions(ctx context.Context, o *Options, onFrame frameFunc) ([]*session, time.Duration, error) {
	sessions := make([]*session, o.Sessions)
	errs := make(chan error, o.Sessions)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var opened counter
	start := time.Now()
	for i := 0; i < o.Sessions; i++ {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			s, err := openSession(ctx, o, i, onFrame)
			if err != nil {
				errs <- err
				return
			}
			sessions[i] = s
			if n := opened.add(1); n%1000 == 0 {
				o.Progress("opened %d/%d %s sessions", n, o.Sessions, o.Transport)
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		closeAll(sessions)
		return nil, elapsed, err
	}
	return sessions, elapsed, ctx.Err()
}

func closeAll(sessions []*session) {
	for _, s := range sessions {
		if s != nil {
			s.close()
		}
	}
}

func openSession(ctx context.Context, o *Options, i int, onFrame frameFunc) (*session, error) {
	user := userName(i % o.Users)
	tok, err := o.MintToken(user)
	if err != nil {
		return nil, err
	}
	d := dialerFor(i, o.Sources)
	if o.Peer == PeerCentrifugo {
		return openCentrifugo(ctx, o, d, tok, onFrame)
	}
	if o.Transport == "ws" {
		return openWS(ctx, o, d, tok, onFrame)
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext:       func(ctx context.Context, n, a string) (net.Conn, error) { return d.DialContext(ctx, n, a) },
		DisableKeepAlives: true,
	}}
	return openSSE(ctx, o, client, tok, onFrame)
}

func openWS(ctx context.Context, o *Options, d *net.Dialer, tok string, onFrame frameFunc) (*session, error) {
	u := "ws" + strings.TrimPrefix(o.BaseURL, "http") + "/v1/ws?token=" + tok
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := dialWS(dctx, d, u)
	if err != nil {
		return nil, fmt.Errorf("dial ws: %w", err)
	}
	go func() {
		_ = c.readMessages(1<<20, func(data []byte) {
			if onFrame != nil && bytes.Contains(data, []byte(`"type":"notification"`)) {
				onFrame(time.Now(), parseStamp(data))
			}
		})
	}()
	return &session{close: c.close}, nil
}

func openSSE(ctx context.Context, o *Options, client *http.Client, tok string, onFrame frameFunc) (*session, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, o.BaseURL+"/v1/sse?token="+tok, nil)
	if err != nil {
		return nil, err
	}
	type result struct {
		resp *http.Response
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		resp, err := client.Do(req)
		ch <- result{resp, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-time.After(15 * time.Second):
		return nil, fmt.Errorf("sse: connect timed out")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, fmt.Errorf("sse: %w", r.err)
	}
	if r.resp.StatusCode != http.StatusOK {
		r.resp.Body.Close()
		return nil, fmt.Errorf("sse: status %d", r.resp.StatusCode)
	}
	body := r.resp.Body
	go func() {
		br := bufio.NewReaderSize(body, 4096)
		for {
			line, err := br.ReadSlice('\n')
			if err != nil && err != bufio.ErrBufferFull {
				return
			}
			if onFrame != nil && bytes.HasPrefix(line, []byte("data: ")) && bytes.Contains(line, []byte(stampKey)) {
				onFrame(time.Now(), parseStamp(line))
			}
		}
	}()
	return &session{close: func() { _ = body.Close() }}, nil
}
