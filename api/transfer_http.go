package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/solar-archive/rls/internal/failstop"
	"github.com/solar-archive/rls/transfer"
)

// NewTransferHTTPHandler serves storage units over plain HTTP, for curl
// and for sites that cannot speak gRPC, with the same confinement as the
// gRPC service:
//
//	GET /v1/transfer/manifest?pfn=PFN            the unit's manifest, JSON
//	GET /v1/transfer/manifest?pfn=PFN&fast=true  the same at once, without
//	                                             digests (hashing starts)
//	GET /v1/transfer/file?pfn=PFN&path=PATH      one file's bytes
//
// PFN is the unit's absolute path and PATH a file's path in its manifest,
// both URL-encoded (curl -G --data-urlencode does it). File responses
// support Range requests and conditional requests (http.ServeContent),
// carry the SHA-256 as ETag and as Repr-Digest (RFC 9530), and accept
// sha256=HEX to insist on a version (412 if the file has another). Errors
// are text: 400 (malformed), 403 (outside the export roots), 404 (no such
// unit or file), 412 (other version), 416 (a Range of more than
// MaxRangeParts parts, or of a zero-byte suffix, bytes=-0), 500.
//
// Routes are registered on mux so that they share the daemon's HTTP
// listener with /metrics.
func NewTransferHTTPHandler(mux *http.ServeMux, src *transfer.Source, log *slog.Logger) {
	h := &transferHTTP{src: src, log: log}
	mux.HandleFunc("GET /v1/transfer/manifest", h.manifest)
	mux.HandleFunc("GET /v1/transfer/file", h.file)
}

type transferHTTP struct {
	src *transfer.Source
	log *slog.Logger
}

func (h *transferHTTP) manifest(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	manifest := h.src.Manifest
	if v := q.Get("fast"); v != "" {
		fast, err := strconv.ParseBool(v)
		if err != nil {
			h.error(w, r, fmt.Errorf("%w: fast=%q: want true or false", transfer.ErrInvalid, v))
			return
		}
		if fast {
			manifest = h.src.FastManifest
		}
	}
	m, err := manifest(r.Context(), q.Get("pfn"))
	if err != nil {
		h.error(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(m)
}

func (h *transferHTTP) file(w http.ResponseWriter, r *http.Request) {
	if err := checkRange(r.Header.Get("Range")); err != nil {
		http.Error(w, err.Error(), http.StatusRequestedRangeNotSatisfiable)
		return
	}
	q := r.URL.Query()
	var want transfer.Digest
	if s := q.Get("sha256"); s != "" {
		if err := want.UnmarshalText([]byte(s)); err != nil {
			h.error(w, r, fmt.Errorf("%w: %v", transfer.ErrInvalid, err))
			return
		}
		if want.IsZero() {
			// As on gRPC: an all-zero digest names no content; leave
			// sha256 out to ask for the file without a check.
			h.error(w, r, fmt.Errorf("%w: sha256: a zero digest names no content", transfer.ErrInvalid))
			return
		}
	}
	f, err := h.src.Open(r.Context(), q.Get("pfn"), q.Get("path"), want)
	if err != nil {
		h.error(w, r, err)
		return
	}
	defer f.Close()
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("ETag", `"`+f.Entry.SHA256.String()+`"`)
	hd.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(f.Entry.SHA256[:])+":")
	http.ServeContent(w, r, "", f.Entry.MTime, f)
}

// error answers err with the HTTP status of its kind: the codes of gRPC's
// HTTP mapping where one fits (RESOURCE_EXHAUSTED is 429), 507 for a store
// stopped because its disk is full and 503 for one stopped otherwise.
func (h *transferHTTP) error(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	var failed *failstop.Error
	switch {
	case errors.As(err, &failed):
		code = http.StatusServiceUnavailable
		if failed.DiskFull() {
			code = http.StatusInsufficientStorage
		}
	case errors.Is(err, transfer.ErrTooLarge):
		code = http.StatusTooManyRequests
	case errors.Is(err, transfer.ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, transfer.ErrRefused):
		code = http.StatusForbidden
	case errors.Is(err, transfer.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, transfer.ErrChanged):
		code = http.StatusPreconditionFailed
	}
	if code == http.StatusInternalServerError {
		h.log.Warn("http transfer failed", "url", r.URL.String(), "error", err)
	}
	http.Error(w, err.Error(), code)
}

// NewTransferCollector returns a collector of a Source's counters, read
// from src.Stats() at each scrape:
//
//	rls_transfer_bytes_sent_total     file bytes served (gRPC and HTTP)
//	rls_transfer_files_hashed_total   files hashed for manifests and reads
//	rls_transfer_bytes_hashed_total
//	rls_transfer_cached_digests       files whose digest is cached
//	rls_transfer_digests_loaded_total digests read from the digest database
func NewTransferCollector(src *transfer.Source) prometheus.Collector {
	return &transferCollector{
		src:    src,
		sent:   prometheus.NewDesc("rls_transfer_bytes_sent_total", "File bytes served by the transfer role, over gRPC and HTTP.", nil, nil),
		files:  prometheus.NewDesc("rls_transfer_files_hashed_total", "Files hashed by the transfer role.", nil, nil),
		hashed: prometheus.NewDesc("rls_transfer_bytes_hashed_total", "Bytes hashed by the transfer role.", nil, nil),
		cached: prometheus.NewDesc("rls_transfer_cached_digests", "Files whose SHA-256 the transfer role holds in its cache.", nil, nil),
		loaded: prometheus.NewDesc("rls_transfer_digests_loaded_total", "Digests the transfer role read from its digest database instead of hashing.", nil, nil),
	}
}

type transferCollector struct {
	src                                 *transfer.Source
	sent, files, hashed, cached, loaded *prometheus.Desc
}

func (c *transferCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sent
	ch <- c.files
	ch <- c.hashed
	ch <- c.cached
	ch <- c.loaded
}

func (c *transferCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(s.BytesSent))
	ch <- prometheus.MustNewConstMetric(c.files, prometheus.CounterValue, float64(s.FilesHashed))
	ch <- prometheus.MustNewConstMetric(c.hashed, prometheus.CounterValue, float64(s.BytesHashed))
	ch <- prometheus.MustNewConstMetric(c.cached, prometheus.GaugeValue, float64(s.CachedFiles))
	ch <- prometheus.MustNewConstMetric(c.loaded, prometheus.CounterValue, float64(s.DigestsLoaded))
}
