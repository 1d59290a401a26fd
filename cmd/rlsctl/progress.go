package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress is the bulk commands' progress bar on stderr. It exists only
// when stderr is a terminal; a nil *progress does nothing, so callers need
// not check. Sized by bytes when the input size is known, else a spinner
// counting lines. Not safe for concurrent use.
type progress struct {
	bar   *progressbar.ProgressBar
	w     io.Writer
	bytes bool
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newProgress(stderr io.Writer, size int64, desc string) *progress {
	if !isTerminal(stderr) {
		return nil
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionSetWidth(30),
	}
	p := &progress{w: stderr, bytes: size >= 0}
	if p.bytes {
		opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionSetPredictTime(true))
	} else {
		size = -1
		opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("lines"))
	}
	p.bar = progressbar.NewOptions64(size, opts...)
	return p
}

// update shows pos input bytes (or nread lines) consumed and the item rate.
func (p *progress) update(pos int64, nread, items uint64, elapsed time.Duration) {
	if p == nil {
		return
	}
	if p.bytes {
		p.bar.Describe(fmt.Sprintf("%d lines, %.0f lines/s", nread, float64(items)/max(elapsed.Seconds(), 1e-3)))
		_ = p.bar.Set64(pos)
	} else {
		_ = p.bar.Set64(int64(nread))
	}
}

// clear erases the bar so that a message can be printed on stderr; the
// next update redraws it.
func (p *progress) clear() {
	if p != nil {
		_ = p.bar.Clear()
	}
}

func (p *progress) finish() {
	if p != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}
