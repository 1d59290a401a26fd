package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/solar-archive/rls/catalog"
)

// metrics are the gRPC request metrics that the server interceptors record:
//
//	rls_grpc_requests_total{method,code}           counter
//	rls_grpc_request_duration_seconds{method}      histogram
//
// method is the full gRPC method ("/rls.v1.Catalog/Create") and code the
// status code name ("OK", "NotFound"). A *metrics is safe for concurrent use.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// newMetrics creates the request metrics and registers them with reg. It
// fails if reg already has metrics of these names.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rls_grpc_requests_total",
			Help: "gRPC requests handled, by full method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rls_grpc_request_duration_seconds",
			Help: "Time to handle a gRPC request, by full method.",
			// 100µs .. ~100s: a single lookup is sub-millisecond, a bulk
			// write of 100,000 items with fsync can take seconds.
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 11),
		}, []string{"method"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// NewCatalogCollector returns a collector of the catalog's counts, read from
// cat.Stats() at each scrape:
//
//	rls_catalog_lfns, rls_catalog_pfns, rls_catalog_mappings, rls_catalog_seq
//
// Register it with the registry that the metrics endpoint serves. Stats never
// blocks writers; besides in-memory counters it reads Pebble's metrics and the
// attribute definitions, which is cheap at scrape rates, not per request.
func NewCatalogCollector(cat *catalog.Catalog) prometheus.Collector {
	return &catalogCollector{
		cat:      cat,
		lfns:     prometheus.NewDesc("rls_catalog_lfns", "LFNs in the local replica catalog.", nil, nil),
		pfns:     prometheus.NewDesc("rls_catalog_pfns", "PFNs in the local replica catalog.", nil, nil),
		mappings: prometheus.NewDesc("rls_catalog_mappings", "LFN-PFN mappings in the local replica catalog.", nil, nil),
		seq:      prometheus.NewDesc("rls_catalog_seq", "Last change-feed sequence number of the local replica catalog.", nil, nil),
	}
}

type catalogCollector struct {
	cat                       *catalog.Catalog
	lfns, pfns, mappings, seq *prometheus.Desc
}

func (c *catalogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lfns
	ch <- c.pfns
	ch <- c.mappings
	ch <- c.seq
}

func (c *catalogCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.cat.Stats()
	ch <- prometheus.MustNewConstMetric(c.lfns, prometheus.GaugeValue, float64(st.LFNs))
	ch <- prometheus.MustNewConstMetric(c.pfns, prometheus.GaugeValue, float64(st.PFNs))
	ch <- prometheus.MustNewConstMetric(c.mappings, prometheus.GaugeValue, float64(st.Mappings))
	ch <- prometheus.MustNewConstMetric(c.seq, prometheus.GaugeValue, float64(st.Seq))
}
