package statuspage

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"sync"
	"time"
)

//go:embed page.html
var files embed.FS

var pageTemplate = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"num":   formatCount,
	"bytes": formatBytes,
	"rate":  func(r float64) string { return formatBytes(uint64(r)) + "/s" },
	"dur":   formatDuration,
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return formatDuration(now.Sub(t)) + " ago"
	},
	"until": func(now, t time.Time) string {
		if !t.After(now) {
			return "expired"
		}
		return "in " + formatDuration(t.Sub(now))
	},
	"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"pct": func(done, total uint64) string {
		if total == 0 {
			return "0"
		}
		return strconv.FormatFloat(100*float64(done)/float64(total), 'f', 1, 64)
	},
}).ParseFS(files, "page.html"))

// RateWindow is how far back the page looks for the recent transfer rate.
const RateWindow = time.Minute

// Handler serves the status page at GET /. It is safe for concurrent use.
type Handler struct {
	src *Sources

	mu      sync.Mutex
	samples []sample // transfer bytes sent at earlier renders, oldest first, within RateWindow
}

type sample struct {
	at    time.Time
	bytes uint64
}

// New returns the page's handler over src, which it keeps.
func New(src *Sources) *Handler { return &Handler{src: src} }

// view is the template's data: a snapshot plus what the page derives.
type view struct {
	Snapshot
	Refresh int // seconds
	// Fresh is, per index site, whether less than three quarters of its
	// validity has passed.
	Fresh map[string]bool
	// AvgRate is the transfer rate since the start, RecentRate over the
	// last RecentWindow (0 when there is no earlier sample yet).
	AvgRate, RecentRate float64
	RecentWindow        time.Duration
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v := view{Snapshot: h.src.Snapshot(r.Context()), Refresh: 5}
	if x := v.Index; x != nil {
		v.Fresh = make(map[string]bool, len(x.Sites))
		for _, s := range x.Sites {
			v.Fresh[s.Site] = v.Now.Sub(s.Received) < s.Expires.Sub(s.Received)*3/4
		}
	}
	if t := v.Transfer; t != nil {
		if v.Uptime > 0 {
			v.AvgRate = float64(t.BytesSent) / v.Uptime.Seconds()
		}
		v.RecentRate, v.RecentWindow = h.recentRate(v.Now, t.BytesSent)
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, v); err != nil {
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

// recentRate records a sample of the bytes sent and returns the rate since
// the oldest sample within RateWindow, and the time it spans.
func (h *Handler) recentRate(now time.Time, sent uint64) (float64, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := 0
	for i < len(h.samples) && now.Sub(h.samples[i].at) > RateWindow {
		i++
	}
	h.samples = append(h.samples[i:], sample{now, sent})
	first := h.samples[0]
	span := now.Sub(first.at)
	if span <= 0 {
		return 0, 0
	}
	return float64(sent-min(first.bytes, sent)) / span.Seconds(), span
}

// formatCount writes n with thin groups of three digits: 1,234,567.
func formatCount(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	return string(b)
}

// formatBytes writes n in IEC units with three significant digits.
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), -1
	for f >= unit && i < 5 {
		f /= unit
		i++
	}
	return strconv.FormatFloat(f, 'f', max(0, 3-len(strconv.Itoa(int(f)))), 64) + " " + "KMGTPE"[i:i+1] + "iB"
}

// formatDuration rounds d for a reader: 42s, 3m12s, 7h59m, 3d4h.
func formatDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + formatDuration(-d)
	case d < time.Second:
		return "0s"
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	d = d.Round(time.Hour)
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}
