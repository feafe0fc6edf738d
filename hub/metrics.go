package hub

import (
	"github.com/heraldhq/herald/pkg/transport"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the hub's Prometheus collectors.
type Metrics struct {
	connections     *prometheus.GaugeVec
	frames          *prometheus.CounterVec
	framesWS        prometheus.Counter // frames' children of the two transports,
	framesSSE       prometheus.Counter // looked up once rather than per write
	acks            prometheus.Counter
	malformedFrames prometheus.Counter
	resumes         *prometheus.CounterVec
	slowConsumers   prometheus.Counter
	evicted         prometheus.Counter
	// sessionsClosed's children by transport.CloseReason, looked up once.
	sessionsClosed [transport.NumCloseReasons]prometheus.Counter
	latency        prometheus.Histogram
}

// NewMetrics creates the hub's collectors and registers them with reg
// (nil: unregistered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_connections", Help: "Open live sessions on this node by transport.",
		}, []string{"transport"}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_frames_delivered_total", Help: "Frames written to live sessions by transport.",
		}, []string{"transport"}),
		acks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_acks_total", Help: "Notification acks received from clients.",
		}),
		malformedFrames: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_malformed_client_frames_total", Help: "Client frames that could not be understood and were ignored.",
		}),
		resumes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_resumes_total", Help: "Session starts by resume outcome (recovered, reset, failed, none).",
		}, []string{"outcome"}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_slow_consumers_total", Help: "Sessions cut off because the client did not keep up.",
		}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_sessions_evicted_total", Help: "Oldest sessions closed because their user opened more than the per-user cap.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_delivery_latency_seconds",
			Help:    "Time from a notification's creation to its frame being written to a session.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	m.framesWS, m.framesSSE = m.frames.WithLabelValues("ws"), m.frames.WithLabelValues("sse")
	closed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_sessions_closed_total",
		Help: "Live sessions ended, by reason (client_close, slow_consumer, write_failed, token_expired, too_many_sessions, shutdown, normal).",
	}, []string{"reason"})
	for r := range m.sessionsClosed {
		m.sessionsClosed[r] = closed.WithLabelValues(transport.CloseReason(r).String())
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.frames, m.acks, m.malformedFrames, m.resumes, m.slowConsumers, m.evicted, closed, m.latency)
	}
	return m
}

// framesOf returns the frames counter of a transport.
func (m *Metrics) framesOf(transport string) prometheus.Counter {
	switch transport {
	case "ws":
		return m.framesWS
	case "sse":
		return m.framesSSE
	}
	return m.frames.WithLabelValues(transport)
}
