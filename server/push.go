package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/pkg/delivery"
	"github.com/heraldhq/herald/pkg/push"
	"github.com/heraldhq/herald/pkg/push/apns"
	"github.com/heraldhq/herald/pkg/push/dispatch"
	"github.com/heraldhq/herald/pkg/push/fcm"
	"github.com/heraldhq/herald/pkg/push/hook"
	"github.com/heraldhq/herald/pkg/push/safedial"
	"github.com/heraldhq/herald/pkg/push/webpush"
	"github.com/heraldhq/herald/server/config"
)

// pushStore keeps devices and pending pushes.
type pushStore interface {
	delivery.PushScheduler
	dispatch.Store
	RegisterDevice(ctx context.Context, d *push.Device, limit int) (created bool, err error)
	PutIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error)
}

// Push tuning.
const (
	pushConcurrency = 32 // sends at once per platform
	vapidKVKey      = "vapid"
	defaultSubject  = "mailto:admin@localhost"
)

// pushState is the node's push side: senders, the fallback decision and
// the dispatcher.
type pushState struct {
	senders   map[string]push.Sender
	fallback  *delivery.Fallback
	dispatch  *dispatch.Dispatcher
	vapidKey  string // public, base64url
	stop      context.CancelFunc
	done      chan struct{}
	sent, ok  atomic.Int64
	allowPriv []string
}

// vapidKeys returns the configured VAPID pair, else the one persisted in
// the store, generating it on first start (every node of a cluster ends up
// with the first node's pair).
func vapidKeys(ctx context.Context, cfg *config.Config, st pushStore) (public, private string, err error) {
	if active := activeCredential(cfg, "webpush"); active != nil {
		return active.PublicKey, active.PrivateKey, nil
	}
	if cfg.VAPIDPublicKey != "" {
		return cfg.VAPIDPublicKey, cfg.VAPIDPrivateKey, nil
	}
	pub, priv, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		return "", "", err
	}
	mine, _ := json.Marshal(map[string]string{"public": pub, "private": priv})
	stored, err := st.PutIfAbsent(ctx, vapidKVKey, mine)
	if err != nil {
		return "", "", fmt.Errorf("persist VAPID keys: %w", err)
	}
	var kp map[string]string
	if err := json.Unmarshal(stored, &kp); err != nil || kp["public"] == "" {
		return "", "", errors.New("persisted VAPID keys are malformed")
	}
	return kp["public"], kp["private"], nil
}

// activeCredential is the active herald.yaml credential of platform.
func activeCredential(cfg *config.Config, platform string) *config.Credential {
	for i := range cfg.Credentials[platform] {
		if c := &cfg.Credentials[platform][i]; c.Active {
			return c
		}
	}
	return nil
}

// pushRootCAs, when set (by tests), is the only CA push senders trust: the
// fake push services on loopback have self-signed certificates.
var pushRootCAs *x509.CertPool

// buildSenders makes a sender for each platform with credentials.
func buildSenders(ctx context.Context, cfg *config.Config, vapidPub, vapidPriv string, reg prometheus.Registerer) (map[string]push.Sender, error) {
	senders := map[string]push.Sender{}
	wrap := func(s push.Sender) push.Sender {
		return push.Limit(push.Retrying(s, push.Policy{}), pushConcurrency)
	}
	endpoints := safedial.Client(cfg.PushAllowPrivate)
	var tlsConf *tls.Config
	var fcmClient *http.Client
	if pushRootCAs != nil {
		// One config per transport: HTTP/2 set-up edits its NextProtos.
		tlsConf = &tls.Config{RootCAs: pushRootCAs}
		endpoints.Transport.(*http.Transport).TLSClientConfig = tlsConf.Clone()
		fcmClient = &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf.Clone(), ForceAttemptHTTP2: true}}
	}

	subject := cfg.VAPIDSubject
	if c := activeCredential(cfg, "webpush"); c != nil && c.Subject != "" {
		subject = c.Subject
	}
	if subject == "" {
		subject = defaultSubject
	}
	wp, err := webpush.New(webpush.Options{PublicKey: vapidPub, PrivateKey: vapidPriv, Subject: subject, Client: endpoints})
	if err != nil {
		return nil, fmt.Errorf("web push: %w", err)
	}
	senders[push.PlatformWebPush] = wrap(wp)

	fcmFile, fcmEndpoint := cfg.FCMCredentials, cfg.FCMEndpoint
	if c := activeCredential(cfg, "fcm"); c != nil {
		fcmFile, fcmEndpoint = c.CredentialsFile, c.Endpoint
	}
	if fcmFile != "" {
		b, err := os.ReadFile(fcmFile)
		if err != nil {
			return nil, fmt.Errorf("HERALD_FCM_CREDENTIALS: %w", err)
		}
		s, err := fcm.New(ctx, fcm.Options{CredentialsJSON: b, Endpoint: fcmEndpoint, HTTPClient: fcmClient})
		if err != nil {
			return nil, fmt.Errorf("fcm: %w", err)
		}
		senders[push.PlatformFCM] = wrap(s)
	}

	a := config.Credential{
		KeyFile: cfg.APNsKeyFile, KeyID: cfg.APNsKeyID, TeamID: cfg.APNsTeamID, Topic: cfg.APNsTopic,
		Env: cfg.APNsEnv, Host: cfg.APNsHost, CertFile: cfg.APNsCertFile, CertPassword: cfg.APNsCertPassword, Label: "default",
	}
	if c := activeCredential(cfg, "apns"); c != nil {
		a = *c
	}
	if a.KeyFile != "" || a.CertFile != "" {
		o := apns.Options{KeyID: a.KeyID, TeamID: a.TeamID, Topic: a.Topic, Production: a.Env == "" || a.Env == "production", Host: a.Host, CertPassword: a.CertPassword, TLSConfig: tlsConf}
		if a.KeyFile != "" {
			if o.KeyP8, err = os.ReadFile(a.KeyFile); err != nil {
				return nil, fmt.Errorf("apns key file: %w", err)
			}
		} else if o.CertP12, err = os.ReadFile(a.CertFile); err != nil {
			return nil, fmt.Errorf("apns certificate: %w", err)
		}
		s, err := apns.New(o)
		if err != nil {
			return nil, fmt.Errorf("apns: %w", err)
		}
		if na := s.NotAfter(); !na.IsZero() {
			g := prometheus.NewGauge(prometheus.GaugeOpts{
				Name:        "herald_push_certificate_expiry_days",
				Help:        "Days until the push certificate expires.",
				ConstLabels: prometheus.Labels{"platform": "apns", "label": a.Label},
			})
			g.Set(math.Floor(time.Until(na).Hours() / 24))
			reg.MustRegister(g)
		}
		senders[push.PlatformAPNs] = wrap(s)
	}

	if cfg.PushWebhookURL != "" {
		s, err := hook.New(hook.Options{URL: cfg.PushWebhookURL, Secret: cfg.PushWebhookSecret, Client: endpoints})
		if err != nil {
			return nil, fmt.Errorf("push webhook: %w", err)
		}
		senders[push.PlatformWebhook] = wrap(s)
	}
	return senders, nil
}

// setupPush builds the push side of the node: VAPID identity, senders, the
// fallback decision wired to the hub's acks, and the dispatcher.
func (s *Server) setupPush(ctx context.Context, cfg *config.Config) error {
	st := s.backends.push
	pub, priv, err := vapidKeys(ctx, cfg, st)
	if err != nil {
		return err
	}
	p := &pushState{vapidKey: pub, allowPriv: cfg.PushAllowPrivate}
	s.push = p
	if !cfg.PushEnabled {
		return nil
	}
	if p.senders, err = buildSenders(ctx, cfg, pub, priv, s.reg); err != nil {
		return err
	}
	sends := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_push_sends_total",
		Help: "Push sends by platform and outcome (ok, gone, retry, failed, skipped, unconfigured, off).",
	}, []string{"platform", "outcome"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "herald_push_send_seconds", Help: "Time of one push send, retries included.",
		Buckets: prometheus.DefBuckets,
	}, []string{"platform"})
	ratio := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "herald_push_delivery_success_ratio", Help: "Push sends accepted by the push service, over all attempted.",
	}, func() float64 {
		if n := p.sent.Load(); n > 0 {
			return float64(p.ok.Load()) / float64(n)
		}
		return 1
	})
	s.reg.MustRegister(sends, latency, ratio)

	var extra []push.Device
	if cfg.PushWebhookURL != "" {
		extra = append(extra, push.Device{Platform: push.PlatformWebhook})
	}
	p.dispatch = dispatch.New(st, channelPrefs{s}, dispatch.Options{
		Senders: p.senders, Extra: extra, Logger: s.log,
		Badge: s.unreadTotal, Delivered: s.recordDelivered,
		OnSend: func(platform, outcome string, d time.Duration) {
			sends.WithLabelValues(platform, outcome).Inc()
			if outcome == "off" || outcome == "unconfigured" || outcome == "skipped" {
				return
			}
			latency.WithLabelValues(platform).Observe(d.Seconds())
			p.sent.Add(1)
			if outcome == "ok" {
				p.ok.Add(1)
			}
		},
	})
	p.fallback = delivery.NewFallback(s.hub, st, delivery.FallbackOptions{
		AckTimeout: cfg.AckTimeout, EveryUser: cfg.PushWebhookURL != "", Due: p.dispatch.Kick, Logger: s.log,
		AcksDropped: s.acksDropped,
	})
	dctx, cancel := context.WithCancel(context.Background())
	p.stop, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		p.dispatch.Run(dctx)
	}()
	return nil
}

// stopPush stops the dispatcher (pushes in hand finish) and the fallback.
func (s *Server) stopPush(ctx context.Context) error {
	p := s.push
	if p == nil || p.stop == nil {
		return nil
	}
	p.stop()
	s.delivery.Close()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return errors.New("push dispatcher did not finish in time")
	}
}

// channelPrefs answers the dispatcher from users' preferences.
type channelPrefs struct{ s *Server }

func (c channelPrefs) ChannelOn(ctx context.Context, user, channel string) (bool, error) {
	p, err := c.s.backends.prefs.Preferences(ctx, user)
	if err != nil {
		return true, err
	}
	return p.ChannelOn(channel), nil
}
