package main

import (
	"runtime/debug"
	"testing"
)

// TestApplyGoGC checks the gogc setting reaches the collector, that 0 keeps
// Go's default and that a GOGC in the environment wins over the setting.
func TestApplyGoGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	current := func() int { p := debug.SetGCPercent(100); debug.SetGCPercent(p); return p }
	noEnv := func(string) (string, bool) { return "", false }

	cfg, err := resolveArgs([]string{"--site", "s", "--data", "/d"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := applyGoGC(cfg.GoGC, noEnv); got != defaultGoGC || current() != defaultGoGC {
		t.Errorf("default: applyGoGC = %d, collector at %d; want %d", got, current(), defaultGoGC)
	}
	cfg, err = resolveArgs([]string{"--site", "s", "--data", "/d"}, map[string]string{"RLSD_GOGC": "0"})
	if err != nil {
		t.Fatal(err)
	}
	if got := applyGoGC(cfg.GoGC, noEnv); got != 100 || current() != 100 {
		t.Errorf("gogc 0: applyGoGC = %d, collector at %d; want Go's default 100", got, current())
	}
	debug.SetGCPercent(150) // as GOGC=150 in the environment would have
	env := func(k string) (string, bool) { return "150", k == "GOGC" }
	if got := applyGoGC(250, env); got != -1 || current() != 150 {
		t.Errorf("GOGC set: applyGoGC = %d, collector at %d; want -1 and GOGC's 150 kept", got, current())
	}
}
