package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// WriteDeadlines returns h with a write deadline on every response that
// grows with the bytes written: from its first byte, a response may take
// base, plus its bytes at minRate bytes per second. A healthy transfer of
// any size keeps ahead of its deadline; a client that stops reading (or
// reads slower than minRate) finds the connection closed once the deadline
// passes, and gives back its descriptor and its handler goroutine. The
// clock starts at the first byte, not at the request, so that a handler's
// own work before it answers (hashing a file for a Range request) does not
// count. The deadline is set through http.ResponseController, so it needs
// the server's ResponseWriter (or wrappers with Unwrap) underneath.
func WriteDeadlines(h http.Handler, base time.Duration, minRate int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), base: base, rate: minRate}
		// No deadline until the first byte; the connection may carry the
		// last response's.
		_ = dw.rc.SetWriteDeadline(time.Time{})
		h.ServeHTTP(dw, r)
		// A handler that wrote nothing: the server writes the headers
		// once it returns.
		dw.begin()
	})
}

// deadlineWriter extends the connection's write deadline before each
// write. Not safe for concurrent use (nor is a ResponseWriter).
type deadlineWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	base  time.Duration
	rate  int64
	start time.Time // of the first byte; zero before
	sent  int64     // bytes written so far
}

func (w *deadlineWriter) WriteHeader(code int) {
	w.begin()
	w.ResponseWriter.WriteHeader(code)
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.begin()
	w.extend(int64(len(p)))
	n, err := w.ResponseWriter.Write(p)
	w.sent += int64(n)
	return n, err
}

// begin starts the clock at the response's first byte.
func (w *deadlineWriter) begin() {
	if w.start.IsZero() {
		w.start = time.Now()
		w.extend(0)
	}
}

// extend sets the deadline for the bytes written so far plus next more.
func (w *deadlineWriter) extend(next int64) {
	// An error means the writer underneath cannot have deadlines (a test
	// recorder): the response goes on without one.
	_ = w.rc.SetWriteDeadline(writeDeadline(w.start, w.base, w.rate, w.sent+next))
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// maxWriteWait caps writeDeadline's wait (146 years) so that huge sizes
// saturate instead of overflowing.
const maxWriteWait = time.Duration(1 << 62)

// writeDeadline is start + base + bytes/rate (rate in bytes per second),
// at most start + maxWriteWait.
func writeDeadline(start time.Time, base time.Duration, rate, bytes int64) time.Time {
	d := float64(base) + float64(bytes)/float64(rate)*float64(time.Second)
	return start.Add(time.Duration(min(d, float64(maxWriteWait))))
}

// MaxRangeParts bounds the parts of one Range request. A puller asks for
// one range at a time; many parts only make a multipart response that
// costs the server a seek and a part header each.
const MaxRangeParts = 64

// checkRange refuses a Range header that http.ServeContent would serve at
// a cost or with a meaning out of proportion: more than MaxRangeParts
// parts, or a suffix of zero bytes ("bytes=-0", which selects nothing and
// which RFC 9110 counts as unsatisfiable). Malformed headers are left to
// ServeContent (it answers 416).
func checkRange(h string) error {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return nil
	}
	n := 0
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n++
		start, end, _ := strings.Cut(part, "-")
		if end = strings.TrimSpace(end); strings.TrimSpace(start) == "" && end != "" && strings.Trim(end, "0") == "" {
			return fmt.Errorf("range %q: a suffix of 0 bytes selects nothing", part)
		}
	}
	if n > MaxRangeParts {
		return fmt.Errorf("range: %d parts, more than the %d this server serves in one request", n, MaxRangeParts)
	}
	return nil
}
