package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// ReadOptions add the reads to make to Options.
type ReadOptions struct {
	Options
	Reads   int // default 5000
	Workers int // concurrent API callers (default 32)
}

// ReadResult is the outcome of Read: the cost of marking one notification
// read, which folds the user's history, records the mark and the new
// counts, and sends both to the user's live session.
type ReadResult struct {
	Scenario     string  `json:"scenario"`
	Transport    string  `json:"transport"`
	Sessions     int     `json:"sessions"`
	PerUser      int     `json:"notifications_per_user"`
	Reads        int64   `json:"reads"`
	Errors       int64   `json:"errors"`
	AchievedRate float64 `json:"achieved_rate"`
	Latency      Latency `json:"latency"` // of the API call
	CPU          CPU     `json:"cpu"`     // per read
}

// Read opens the sessions, gives each user ceil(Reads/Users)
// notifications, each with its own tag, then reads them one by one
// through the server API (POST /v1/users/{id}/read {"tag"}), users taken
// in turn, and measures the calls and the CPU per read.
func Read(ctx context.Context, o ReadOptions) (*ReadResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if o.Peer != "" {
		return nil, errors.New("loadgen: read: peers have no read state")
	}
	if o.Reads <= 0 {
		o.Reads = 5000
	}
	if o.Workers <= 0 {
		o.Workers = 32
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
	perUser := (o.Reads + o.Users - 1) / o.Users
	for j := 0; j < perUser; j++ {
		if err := postTagged(ctx, client, &o.Options, users, readTag(j)); err != nil {
			return nil, err
		}
	}
	want := int64(perUser * o.Users)
	for deadline := time.Now().Add(30 * time.Second); recv.Load() < min(want, int64(o.Sessions*perUser)) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	o.Progress("%d notifications delivered; reading", recv.Load())

	var (
		errs atomic.Int64
		mu   sync.Mutex
		lat  = make([]time.Duration, 0, o.Reads)
	)
	header := []byte("Authorization: Bearer " + o.APIKey + "\r\nContent-Type: application/json\r\n")
	start := time.Now()
	cpu := startCPU(o.serverPIDs(), o.RedisPIDs)
	drive(ctx, o.Reads, o.Workers, 0, func() { o.Progress("read %d/%d", len(lat), o.Reads) }, func(i int) {
		user, tag := users[i%o.Users], readTag(i/o.Users)
		t0 := time.Now()
		status, err := client.post(ctx, "/v1/users/"+url.PathEscape(user)+"/read", header, fmt.Appendf(nil, `{"tag":%q}`, tag))
		if err != nil || status != http.StatusOK {
			errs.Add(1)
			return
		}
		d := time.Since(t0)
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	return &ReadResult{
		Scenario: "read", Transport: o.Transport, Sessions: o.Sessions, PerUser: perUser,
		Reads: int64(len(lat)), Errors: errs.Load(), AchievedRate: float64(len(lat)) / elapsed.Seconds(),
		Latency: summarize(lat), CPU: cpu.per(int64(len(lat))),
	}, nil
}

func readTag(j int) string { return fmt.Sprint("lg-read-", j) }

// postTagged sends one notification with tag to every user, in calls of
// at most 1000 recipients.
func postTagged(ctx context.Context, p *poster, o *Options, users []string, tag string) error {
	header := []byte("Authorization: Bearer " + o.APIKey + "\r\nContent-Type: application/json\r\n")
	for len(users) > 0 {
		n := min(len(users), 1000)
		to, _ := json.Marshal(users[:n])
		users = users[n:]
		body := fmt.Appendf(nil, `{"to":%s,"title":"load","body":"generated","tag":%q}`, to, tag)
		status, err := p.post(ctx, "/v1/notifications", header, body)
		if err != nil {
			return err
		}
		if status != http.StatusAccepted {
			return fmt.Errorf("send: status %d", status)
		}
	}
	return nil
}
