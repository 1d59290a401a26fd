// Package pebblelog sends Pebble's log lines to slog, for every package of
// rls that keeps state in Pebble (the catalog, the index, the transfer
// source's digests).
package pebblelog

import (
	"fmt"
	"log/slog"
)

// Logger is a pebble.Logger (and pebble.LoggerAndTracer's logging half)
// writing to l: Pebble's informational lines at debug level, its errors at
// error level. Fatalf logs, calls OnFatal if set (internal/failstop stops
// the store there), then panics, as Pebble expects.
type Logger struct {
	L       *slog.Logger
	OnFatal func(msg string)
}

// New returns a Logger writing to l with component=pebble.
func New(l *slog.Logger) Logger { return Logger{L: l.With("component", "pebble")} }

func (p Logger) Infof(format string, args ...any)  { p.L.Debug(fmt.Sprintf(format, args...)) }
func (p Logger) Errorf(format string, args ...any) { p.L.Error(fmt.Sprintf(format, args...)) }
func (p Logger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.L.Error(msg)
	if p.OnFatal != nil {
		p.OnFatal(msg)
	}
	panic(msg)
}
