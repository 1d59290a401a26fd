package intake

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are an Intake's Prometheus metrics, each with a constant label
// table (the queue table setting):
//
//	rls_mirror_intake_rows_claimed_total                counter  rows of committed batches, rejected ones included
//	rls_mirror_intake_batches_total{result}             counter  result: ok, sink_error, db_error
//	rls_mirror_intake_rows_rejected_total{reason}       counter  reason: null_sunum, negative_sunum, unknown_series
//	rls_mirror_intake_lag_seconds                       gauge    see lag
//	rls_mirror_intake_connected                         gauge    1 while connected and listening, else 0
type metrics struct {
	claimed   prometheus.Counter
	batches   *prometheus.CounterVec
	rejects   *prometheus.CounterVec
	connected prometheus.Gauge
	lagDesc   *prometheus.Desc

	mu         sync.Mutex
	lastDrain  time.Time // when a drain last found nothing more to claim (at first: when the intake was made)
	backlog    bool      // the latest batch was full: more rows were waiting
	oldestSeen time.Time // the oldest queued_at in the latest full batch; zero if the table has none
}

func newMetrics(table string, now time.Time) *metrics {
	labels := prometheus.Labels{"table": table}
	m := &metrics{
		claimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rls_mirror_intake_rows_claimed_total", ConstLabels: labels,
			Help: "Queue rows claimed in committed batches (handed to the mirror or rejected), then deleted.",
		}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rls_mirror_intake_batches_total", ConstLabels: labels,
			Help: "Batches with rows, by result: ok (committed), sink_error or db_error (rolled back, rows kept).",
		}, []string{"result"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rls_mirror_intake_rows_rejected_total", ConstLabels: labels,
			Help: "Queue rows moved to the rejected table, by reason.",
		}, []string{"reason"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rls_mirror_intake_connected", ConstLabels: labels,
			Help: "1 while the intake is connected to PostgreSQL and listening, else 0.",
		}),
		lagDesc: prometheus.NewDesc("rls_mirror_intake_lag_seconds",
			"How far behind the queue the intake may be: the age of the oldest row seen while a backlog is "+
				"drained (if the table has queued_at), else the time since the intake last found the queue empty.",
			nil, labels),
		lastDrain: now,
	}
	// Make the label values known, so that dashboards see zeros.
	for _, r := range []string{"ok", "sink_error", "db_error"} {
		m.batches.WithLabelValues(r)
	}
	for _, r := range []string{reasonNullSunum, reasonNegativeSunum, reasonUnknownSeries} {
		m.rejects.WithLabelValues(r)
	}
	return m
}

// noteBatch records a committed batch of n rows; full says the batch was
// full, so more rows may be waiting, and oldest is its oldest queued_at.
func (m *metrics) noteBatch(n int, full bool, oldest, now time.Time) {
	if n > 0 {
		m.claimed.Add(float64(n))
		m.batches.WithLabelValues("ok").Inc()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.backlog = full
	if full {
		m.oldestSeen = oldest
	} else {
		m.lastDrain, m.oldestSeen = now, time.Time{}
	}
}

func (m *metrics) batchFailed(err error) {
	var se *sinkError
	if errors.As(err, &se) {
		m.batches.WithLabelValues("sink_error").Inc()
	} else {
		m.batches.WithLabelValues("db_error").Inc()
	}
}

func (m *metrics) rejected(reason string) { m.rejects.WithLabelValues(reason).Inc() }

func (m *metrics) setConnected(up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.connected.Set(v)
}

// lag is the intake lag at now: while a backlog is being drained, the age of
// its oldest row seen, when the table tells; otherwise the time since a
// drain last found the queue empty. The latter keeps growing while the
// intake cannot reach the table, so an outage shows as lag too.
func (m *metrics) lag(now time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.backlog && !m.oldestSeen.IsZero() {
		return now.Sub(m.oldestSeen)
	}
	return now.Sub(m.lastDrain)
}

// Describe implements prometheus.Collector.
func (in *Intake) Describe(ch chan<- *prometheus.Desc) {
	m := in.metrics
	m.claimed.Describe(ch)
	m.batches.Describe(ch)
	m.rejects.Describe(ch)
	m.connected.Describe(ch)
	ch <- m.lagDesc
}

// Collect implements prometheus.Collector.
func (in *Intake) Collect(ch chan<- prometheus.Metric) {
	m := in.metrics
	m.claimed.Collect(ch)
	m.batches.Collect(ch)
	m.rejects.Collect(ch)
	m.connected.Collect(ch)
	ch <- prometheus.MustNewConstMetric(m.lagDesc, prometheus.GaugeValue, m.lag(time.Now()).Seconds())
}

var _ prometheus.Collector = (*Intake)(nil)
