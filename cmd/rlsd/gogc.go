package main

import "runtime/debug"

// defaultGoGC is rlsd's garbage collector target percentage. rlsd's live Go
// heap is small (a few MB to a few tens of MB: Pebble's block caches and
// memtables are allocated outside it), so with Go's default of 100 the
// collector runs many times a second under load: at 26,000 lookups/s on one
// CPU, every 120 ms with an 8 MB live heap. Each cycle takes a share of the
// one CPU for a few milliseconds, which the calls then waiting see in their
// tail. At 400 the heap may grow to five times the live heap (tens of MB
// more) and the collector runs a quarter as often; measured on one pinned
// CPU it gave QueryLFN 31,996/s against 25,912/s, and a p99 of 2.8 ms
// against 4.4 ms at half that rate (scripts/bench-lrc.sh, same machine).
const defaultGoGC = 400

// applyGoGC sets the collector's target percentage from the gogc setting,
// unless the GOGC environment variable is set (the runtime has applied it
// already) or percent is 0. It returns the percentage in effect, or -1
// when GOGC set it.
func applyGoGC(percent int, getenv func(string) (string, bool)) int {
	if _, ok := getenv("GOGC"); ok {
		return -1
	}
	if percent == 0 {
		percent = 100
	}
	debug.SetGCPercent(percent)
	return percent
}
