package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// IdleResult is the outcome of Idle.
type IdleResult struct {
	Scenario      string  `json:"scenario"`
	Transport     string  `json:"transport"`
	Peer          string  `json:"peer,omitempty"` // the server driven when not Herald
	Sessions      int     `json:"sessions"`
	ConnectPerSec float64 `json:"connect_per_sec"`
	RSSBefore     int64   `json:"rss_before_bytes,omitempty"`
	RSSAfter      int64   `json:"rss_after_bytes,omitempty"`
	BytesPerConn  float64 `json:"bytes_per_conn,omitempty"`
}

// Idle opens o.Sessions sessions, lets them settle and reports the server's
// RSS growth per connection.
func Idle(ctx context.Context, o Options) (*IdleResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	res := &IdleResult{Scenario: "idle", Transport: o.Transport, Peer: o.Peer, Sessions: o.Sessions}
	if o.ServerPID > 0 {
		res.RSSBefore, _ = RSS(o.ServerPID)
	}
	sessions, took, err := openSessions(ctx, &o, nil)
	if err != nil {
		return nil, err
	}
	defer closeAll(sessions)
	res.ConnectPerSec = float64(o.Sessions) / took.Seconds()
	if o.ServerPID > 0 {
		time.Sleep(3 * time.Second) // let the server settle
		res.RSSAfter, _ = RSS(o.ServerPID)
		res.BytesPerConn = float64(res.RSSAfter-res.RSSBefore) / float64(o.Sessions)
	}
	return res, nil
}

// Latency summarises end-to-end delivery times in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	pct := func(p float64) float64 {
		i := int(p * float64(len(d)-1))
		return float64(d[i].Microseconds()) / 1000
	}
	return Latency{P50: pct(.50), P90: pct(.90), P99: pct(.99), Max: pct(1)}
}

// latencies collects receive-minus-send times from many goroutines.
type latencies struct {
	mu   sync.Mutex
	d    []time.Duration
	recv atomic.Int64
}

func (l *latencies) observe(recv time.Time, sent int64) {
	l.recv.Add(1)
	if sent == 0 {
		return
	}
	d := recv.Sub(time.Unix(0, sent))
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// UnicastOptions add the send side to Options.
type UnicastOptions struct {
	Options
	Messages int     // notifications to send
	Rate     float64 // per second; 0 = as fast as possible
	Workers  int     // concurrent API callers (default 32)
}

// UnicastResult is the outcome of Unicast.
type UnicastResult struct {
	Scenario      string  `json:"scenario"`
	Transport     string  `json:"transport"`
	Peer          string  `json:"peer,omitempty"` // the server driven when not Herald
	Sessions      int     `json:"sessions"`
	Sent          int64   `json:"sent"`
	Delivered     int64   `json:"delivered"`
	SendErrors    int64   `json:"send_errors"`
	TargetRate    float64 `json:"target_rate"`
	AchievedRate  float64 `json:"achieved_rate"`
	DeliveredRate float64 `json:"delivered_rate"`
	Latency       Latency `json:"latency"`
	CPU           CPU     `json:"cpu"` // per delivered notification
}

// Unicast opens the sessions, sends o.Messages notifications to random
// users (one recipient each) and measures send-to-frame latency.
func Unicast(ctx context.Context, o UnicastOptions) (*UnicastResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if o.Workers <= 0 {
		o.Workers = 32
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	lat := &latencies{d: make([]time.Duration, 0, o.Messages)}
	sessions, client, err := openRun(ctx, &o.Options, lat.observe)
	if err != nil {
		return nil, err
	}
	defer closeAll(sessions)
	var sent, errs atomic.Int64
	start := time.Now()
	cpu := startCPU(o.serverPIDs(), o.RedisPIDs)
	progress := func() { o.Progress("sent %d/%d, delivered %d", sent.Load(), o.Messages, lat.recv.Load()) }
	drive(ctx, o.Messages, o.Workers, o.Rate, progress, func(int) {
		user := userName(rand.IntN(o.Users))
		if err := postNotification(ctx, client, &o.Options, []string{user}); err != nil {
			errs.Add(1)
			return
		}
		sent.Add(1)
	})
	sendTime := time.Since(start)
	deadline := time.Now().Add(10 * time.Second)
	for lat.recv.Load() < sent.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	total := time.Since(start)
	lat.mu.Lock()
	defer lat.mu.Unlock()
	return &UnicastResult{
		Scenario: "unicast", Transport: o.Transport, Peer: o.Peer, Sessions: o.Sessions,
		Sent: sent.Load(), Delivered: lat.recv.Load(), SendErrors: errs.Load(),
		TargetRate: o.Rate, AchievedRate: float64(sent.Load()) / sendTime.Seconds(),
		DeliveredRate: float64(lat.recv.Load()) / total.Seconds(),
		Latency:       summarize(lat.d),
		CPU:           cpu.per(lat.recv.Load()),
	}, nil
}

// FanoutOptions add rounds to Options.
type FanoutOptions struct {
	Options
	Rounds int // default 20
}

// FanoutResult is the outcome of Fanout: per round, the time from the API
// call to the last of the users receiving the notification.
type FanoutResult struct {
	Scenario   string  `json:"scenario"`
	Transport  string  `json:"transport"`
	Peer       string  `json:"peer,omitempty"` // the server driven when not Herald
	Users      int     `json:"users"`
	Rounds     int     `json:"rounds"`
	Incomplete int     `json:"incomplete_rounds"`
	LastFrame  Latency `json:"last_frame"`
	CPU        CPU     `json:"cpu"`            // per delivered frame (recipient)
	PerFanout  CPU     `json:"cpu_per_fanout"` // per round sent: one notification to every user
}

// Fanout sends one notification to every user per round (one API call) and
// measures when the last frame arrives.
func Fanout(ctx context.Context, o FanoutOptions) (*FanoutResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if o.Rounds <= 0 {
		o.Rounds = 20
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	var recv atomic.Int64
	sessions, client, err := openRun(ctx, &o.Options, func(time.Time, int64) { recv.Add(1) })
	if err != nil {
		return nil, err
	}
	defer closeAll(sessions)
	users := userNames(o.Users)
	res := &FanoutResult{Scenario: "fanout", Transport: o.Transport, Peer: o.Peer, Users: o.Users, Rounds: o.Rounds}
	var times []time.Duration
	cpu, first := startCPU(o.serverPIDs(), o.RedisPIDs), recv.Load()
	var sent int64
	for r := 0; r < o.Rounds && ctx.Err() == nil; r++ {
		base := recv.Load()
		start := time.Now()
		if err := postNotification(ctx, client, &o.Options, users); err != nil {
			return nil, err
		}
		sent++
		want := base + int64(o.Sessions)
		deadline := start.Add(10 * time.Second)
		for recv.Load() < want && time.Now().Before(deadline) {
			time.Sleep(200 * time.Microsecond)
		}
		if recv.Load() < want {
			res.Incomplete++
			continue
		}
		times = append(times, time.Since(start))
		o.Progress("round %d: last frame after %v", r+1, times[len(times)-1])
		time.Sleep(200 * time.Millisecond)
	}
	res.LastFrame = summarize(times)
	res.CPU = cpu.per(recv.Load() - first)
	res.PerFanout = cpu.per(sent)
	return res, nil
}

// openRun opens the sessions of a run, lets their subscriptions settle,
// and makes the API client; on failure nothing stays open.
func openRun(ctx context.Context, o *Options, onFrame frameFunc) ([]*session, *poster, error) {
	sessions, _, err := openSessions(ctx, o, onFrame)
	if err != nil {
		return nil, nil, err
	}
	time.Sleep(time.Second) // let subscriptions settle
	client, err := newPoster(o.SendURL, o.Sources)
	if err != nil {
		closeAll(sessions)
		return nil, nil, err
	}
	return sessions, client, nil
}

func postNotification(ctx context.Context, p *poster, o *Options, to []string) error {
	if o.Peer == PeerCentrifugo {
		return postCentrifugo(ctx, p, o, to)
	}
	users, _ := json.Marshal(to)
	body := fmt.Appendf(nil, `{"to":%s,"title":"load","body":"generated","data":{"lgt":%d}}`, users, time.Now().UnixNano())
	header := []byte("Authorization: Bearer " + o.APIKey + "\r\nContent-Type: application/json\r\n")
	status, err := p.post(ctx, "/v1/notifications", header, body)
	if err != nil {
		return err
	}
	if status != http.StatusAccepted {
		return fmt.Errorf("send: status %d", status)
	}
	return nil
}
