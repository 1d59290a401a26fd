package api

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/index"
)

// NewCatalogCollector returns a collector of the catalog's counts, read from
// cat.Stats at each scrape (bounded by catalogScrapeTimeout):
//
//	rls_catalog_lfns, rls_catalog_pfns, rls_catalog_mappings, rls_catalog_seq
//
// Register it with the registry that the metrics endpoint serves. A scrape
// while the catalog fails (closed, stopped, unreachable) has none of them.
func NewCatalogCollector(cat catalog.StatsReporter) prometheus.Collector {
	return &catalogCollector{
		cat:      cat,
		lfns:     prometheus.NewDesc("rls_catalog_lfns", "LFNs in the local replica catalog.", nil, nil),
		pfns:     prometheus.NewDesc("rls_catalog_pfns", "PFNs in the local replica catalog.", nil, nil),
		mappings: prometheus.NewDesc("rls_catalog_mappings", "LFN-PFN mappings in the local replica catalog.", nil, nil),
		seq:      prometheus.NewDesc("rls_catalog_seq", "Last change-feed sequence number of the local replica catalog.", nil, nil),
	}
}

// catalogScrapeTimeout bounds the catalog's part of a scrape.
const catalogScrapeTimeout = 5 * time.Second

type catalogCollector struct {
	cat                       catalog.StatsReporter
	lfns, pfns, mappings, seq *prometheus.Desc
}

func (c *catalogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lfns
	ch <- c.pfns
	ch <- c.mappings
	ch <- c.seq
}

func (c *catalogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), catalogScrapeTimeout)
	defer cancel()
	st, err := c.cat.Stats(ctx)
	if err != nil {
		return // a failed catalog's counts may include writes that failed
	}
	ch <- prometheus.MustNewConstMetric(c.lfns, prometheus.GaugeValue, float64(st.LFNs))
	ch <- prometheus.MustNewConstMetric(c.pfns, prometheus.GaugeValue, float64(st.PFNs))
	ch <- prometheus.MustNewConstMetric(c.mappings, prometheus.GaugeValue, float64(st.Mappings))
	ch <- prometheus.MustNewConstMetric(c.seq, prometheus.GaugeValue, float64(st.Seq))
}

// NewIndexCollector returns a collector of the index's figures, read from
// x.Stats() at each scrape (a walk over the sites, under a read lock):
//
//	rls_index_sites{mode="list"|"bloom"}   sites whose state has not expired
//	rls_index_exact_entries                (site, LFN) pairs held exactly
//	rls_index_bloom_bits                   bits of the sites' filters
//	rls_index_memory_bytes                 lists, filters and overlays
//	rls_index_site_age_seconds{site}       since each site's state was produced
//	rls_index_site_expires_seconds{site}   until each site's state expires
func NewIndexCollector(x *index.Index) prometheus.Collector {
	return &indexCollector{
		x:       x,
		sites:   prometheus.NewDesc("rls_index_sites", "Sites whose soft state the index holds, by the mode of their last full update.", []string{"mode"}, nil),
		exact:   prometheus.NewDesc("rls_index_exact_entries", "(site, LFN) pairs the index holds exactly (lists and deltas).", nil, nil),
		bits:    prometheus.NewDesc("rls_index_bloom_bits", "Bits of the Bloom filters the index holds.", nil, nil),
		memory:  prometheus.NewDesc("rls_index_memory_bytes", "Memory held by the index's lists, filters and overlays (approximate).", nil, nil),
		age:     prometheus.NewDesc("rls_index_site_age_seconds", "Seconds since the site produced the state the index holds.", []string{"site"}, nil),
		expires: prometheus.NewDesc("rls_index_site_expires_seconds", "Seconds until the site's state expires at the index.", []string{"site"}, nil),
	}
}

type indexCollector struct {
	x                                        *index.Index
	sites, exact, bits, memory, age, expires *prometheus.Desc
}

func (c *indexCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sites, c.exact, c.bits, c.memory, c.age, c.expires} {
		ch <- d
	}
}

func (c *indexCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.x.Stats()
	ch <- prometheus.MustNewConstMetric(c.sites, prometheus.GaugeValue, float64(st.ListSites), "list")
	ch <- prometheus.MustNewConstMetric(c.sites, prometheus.GaugeValue, float64(st.BloomSites), "bloom")
	ch <- prometheus.MustNewConstMetric(c.exact, prometheus.GaugeValue, float64(st.ExactEntries))
	ch <- prometheus.MustNewConstMetric(c.bits, prometheus.GaugeValue, float64(st.BloomBits))
	ch <- prometheus.MustNewConstMetric(c.memory, prometheus.GaugeValue, float64(st.MemoryBytes))
	now := time.Now()
	for _, s := range c.x.Sites() {
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, now.Sub(s.Updated).Seconds(), s.Site)
		ch <- prometheus.MustNewConstMetric(c.expires, prometheus.GaugeValue, s.Expires.Sub(now).Seconds(), s.Site)
	}
}
