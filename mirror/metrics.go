package mirror

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descUnits = prometheus.NewDesc("rls_mirror_units", "Mirror records per state.", []string{"state"}, nil)
	descPulls = prometheus.NewDesc("rls_mirror_pulls_total", "Pull calls per source and outcome (ok, partial, failed).",
		[]string{"source", "outcome"}, nil)
	descBytes    = prometheus.NewDesc("rls_mirror_bytes_total", "Bytes received per source.", []string{"source"}, nil)
	descSrcUnits = prometheus.NewDesc("rls_mirror_source_units_total", "Units placed per source.", []string{"source"}, nil)
	descConc     = prometheus.NewDesc("rls_mirror_source_concurrency", "Current concurrency limit per source.", []string{"source"}, nil)
	descLag      = prometheus.NewDesc("rls_mirror_queue_lag_seconds",
		"Age of the oldest due unit waiting in each lane (0 when none waits).", []string{"lane"}, nil)
)

// Collector returns a prometheus.Collector of the engine's metrics.
func (e *Engine) Collector() prometheus.Collector { return collector{e} }

type collector struct{ e *Engine }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUnits, descPulls, descBytes, descSrcUnits, descConc, descLag} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for st, n := range c.e.store.Counts() {
		ch <- prometheus.MustNewConstMetric(descUnits, prometheus.GaugeValue, float64(n), st.String())
	}
	for _, s := range c.e.Sources() {
		for o, n := range s.Pulls {
			ch <- prometheus.MustNewConstMetric(descPulls, prometheus.CounterValue, float64(n), s.Site, o)
		}
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(s.Bytes), s.Site)
		ch <- prometheus.MustNewConstMetric(descSrcUnits, prometheus.CounterValue, float64(s.Units), s.Site)
		ch <- prometheus.MustNewConstMetric(descConc, prometheus.GaugeValue, float64(s.Concurrency), s.Site)
	}
	now := time.Now()
	for _, l := range Lanes {
		lag := 0.0
		if t, err := c.e.store.oldestDue(l); err == nil && !t.IsZero() && t.Before(now) {
			lag = now.Sub(t).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, lag, l.String())
	}
}
