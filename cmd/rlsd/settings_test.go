package main

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/solar-archive/rls/internal/secure"
)

// settingNames are the names users have: each is a flag (--NAME), an
// environment variable (the second column) and a key of the configuration
// file (NAME:). They are a contract; the table is spelled out by hand so
// that a renamed setting fails here. value is given on the command line,
// in the variable and in the file alike; set is what it does to the
// defaults.
var settingNames = []struct {
	name, env, value string
	set              func(*config)
}{
	{"site", "RLSD_SITE", "s1", func(c *config) { c.Site = "s1" }},
	{"data", "RLSD_DATA", "/d1", func(c *config) { c.Data = "/d1" }},
	{"listen", "RLSD_LISTEN", "127.0.0.1:9", func(c *config) { c.Listen = "127.0.0.1:9" }},
	{"roles", "RLSD_ROLES", "lrc,rli", func(c *config) { c.Roles = roleList{"lrc", "rli"} }},
	{"http-listen", "RLSD_HTTP_LISTEN", "127.0.0.1:8", func(c *config) { c.HTTPListen = "127.0.0.1:8" }},
	{"log-format", "RLSD_LOG_FORMAT", "json", func(c *config) { c.LogFormat = "json" }},
	{"log-level", "RLSD_LOG_LEVEL", "debug", func(c *config) { c.LogLevel = "debug" }},
	{"no-sync", "RLSD_NO_SYNC", "true", func(c *config) { c.NoSync = true }},
	{"catalog-dsn", "RLSD_CATALOG_DSN", "postgres://rls@127.0.0.1:5432/rls", func(c *config) { c.CatalogDSN = "postgres://rls@127.0.0.1:5432/rls" }},
	{"shutdown-timeout", "RLSD_SHUTDOWN_TIMEOUT", "3s", func(c *config) { c.ShutdownTimeout = 3 * time.Second }},
	{"export-root", "RLSD_EXPORT_ROOT", "/a,/b", func(c *config) { c.ExportRoots = pathList{"/a", "/b"} }},
	{"pprof", "RLSD_PPROF", "true", func(c *config) { c.PProf = true }},
	{"stats-interval", "RLSD_STATS_INTERVAL", "30s", func(c *config) { c.StatsInterval = 30 * time.Second }},
	{"gogc", "RLSD_GOGC", "200", func(c *config) { c.GoGC = 200 }},
	{"index-expire-interval", "RLSD_INDEX_EXPIRE_INTERVAL", "2m", func(c *config) { c.IndexExpireInterval = 2 * time.Minute }},
	{"index-max-bloom-bits", "RLSD_INDEX_MAX_BLOOM_BITS", "4096", func(c *config) { c.IndexMaxBloomBits = 4096 }},
	{"index-max-sites", "RLSD_INDEX_MAX_SITES", "7", func(c *config) { c.IndexMaxSites = 7 }},
	{"index-update-idle-timeout", "RLSD_INDEX_UPDATE_IDLE_TIMEOUT", "5s", func(c *config) { c.IndexUpdateIdleTimeout = 5 * time.Second }},
	{"http-idle-timeout", "RLSD_HTTP_IDLE_TIMEOUT", "7s", func(c *config) { c.HTTPIdleTimeout = 7 * time.Second }},
	{"http-write-timeout", "RLSD_HTTP_WRITE_TIMEOUT", "9s", func(c *config) { c.HTTPWriteTimeout = 9 * time.Second }},
	{"http-min-write-rate", "RLSD_HTTP_MIN_WRITE_RATE", "1024", func(c *config) { c.HTTPMinWriteRate = 1024 }},
	{"http-max-conns", "RLSD_HTTP_MAX_CONNS", "100", func(c *config) { c.HTTPMaxConns = 100 }},
	{"advertise", "RLSD_ADVERTISE", "s:7600", func(c *config) { c.Advertise = "s:7600" }},
	{"update-to", "RLSD_UPDATE_TO", "a:1,b:2", func(c *config) { c.UpdateTo = pathList{"a:1", "b:2"} }},
	{"update-mode", "RLSD_UPDATE_MODE", "bloom", func(c *config) { c.UpdateMode = "bloom" }},
	{"update-deltas", "RLSD_UPDATE_DELTAS", "true", func(c *config) { c.UpdateDeltas = true }},
	{"update-interval", "RLSD_UPDATE_INTERVAL", "1h", func(c *config) { c.UpdateInterval = time.Hour }},
	{"update-validity", "RLSD_UPDATE_VALIDITY", "4h", func(c *config) { c.UpdateValidity = 4 * time.Hour }},
	{"update-delta-delay", "RLSD_UPDATE_DELTA_DELAY", "1s", func(c *config) { c.UpdateDeltaDelay = time.Second }},
	{"update-bloom-fp", "RLSD_UPDATE_BLOOM_FP", "0.05", func(c *config) { c.UpdateBloomFP = 0.05 }},
	{"tls-cert", "RLSD_TLS_CERT", "/c.pem", func(c *config) { c.TLSCert = "/c.pem" }},
	{"tls-key", "RLSD_TLS_KEY", "/k.pem", func(c *config) { c.TLSKey = "/k.pem" }},
	{"tls-client-ca", "RLSD_TLS_CLIENT_CA", "/ca.pem", func(c *config) { c.TLSClientCA = "/ca.pem" }},
	{"mirror-index", "RLSD_MIRROR_INDEX", "127.0.0.1:5,127.0.0.1:6", func(c *config) { c.MirrorIndex = pathList{"127.0.0.1:5", "127.0.0.1:6"} }},
	{"mirror-store", "RLSD_MIRROR_STORE", "/m", func(c *config) { c.MirrorStore = "/m" }},
	{"mirror-tier", "RLSD_MIRROR_TIER", "2", func(c *config) { c.MirrorTier = 2 }},
	{"mirror-authority", "RLSD_MIRROR_AUTHORITY", "jsoc=j:1", func(c *config) { c.MirrorAuthority = "jsoc=j:1" }},
	{"mirror-user-workers", "RLSD_MIRROR_USER_WORKERS", "3", func(c *config) { c.MirrorUserWorkers = 3 }},
	{"mirror-bulk-workers", "RLSD_MIRROR_BULK_WORKERS", "9", func(c *config) { c.MirrorBulkWorkers = 9 }},
	{"mirror-source-min", "RLSD_MIRROR_SOURCE_MIN", "1", func(c *config) { c.MirrorSourceMin = 1 }},
	{"mirror-source-max", "RLSD_MIRROR_SOURCE_MAX", "4", func(c *config) { c.MirrorSourceMax = 4 }},
	{"mirror-retry-base", "RLSD_MIRROR_RETRY_BASE", "2m", func(c *config) { c.MirrorRetryBase = 2 * time.Minute }},
	{"mirror-retry-cap", "RLSD_MIRROR_RETRY_CAP", "2h", func(c *config) { c.MirrorRetryCap = 2 * time.Hour }},
	{"mirror-pending-interval", "RLSD_MIRROR_PENDING_INTERVAL", "3s", func(c *config) { c.MirrorPendingInterval = 3 * time.Second }},
	{"mirror-batch-units", "RLSD_MIRROR_BATCH_UNITS", "5", func(c *config) { c.MirrorBatchUnits = 5 }},
	{"mirror-batch-bytes", "RLSD_MIRROR_BATCH_BYTES", "1048576", func(c *config) { c.MirrorBatchBytes = 1 << 20 }},
	{"mirror-batch-idle", "RLSD_MIRROR_BATCH_IDLE", "1s", func(c *config) { c.MirrorBatchIdle = time.Second }},
	{"mirror-on-done", "RLSD_MIRROR_ON_DONE", "echo done", func(c *config) { c.MirrorOnDone = "echo done" }},
	{"mirror-intake-dsn", "RLSD_MIRROR_INTAKE_DSN", "postgres://x@127.0.0.1/jsoc", func(c *config) { c.MirrorIntakeDSN = "postgres://x@127.0.0.1/jsoc" }},
	{"mirror-intake-table", "RLSD_MIRROR_INTAKE_TABLE", "drms.q", func(c *config) { c.MirrorIntakeTable = "drms.q" }},
	{"mirror-intake-channel", "RLSD_MIRROR_INTAKE_CHANNEL", "ch", func(c *config) { c.MirrorIntakeChannel = "ch" }},
	{"mirror-intake-poll-interval", "RLSD_MIRROR_INTAKE_POLL_INTERVAL", "7s", func(c *config) { c.MirrorIntakePoll = 7 * time.Second }},
	{"mirror-intake-batch-size", "RLSD_MIRROR_INTAKE_BATCH_SIZE", "10", func(c *config) { c.MirrorIntakeBatch = 10 }},
}

// mergeArgs merges the defaults, the file (if not empty), env and args as
// rlsd does, without validating the result.
func mergeArgs(t *testing.T, args []string, env map[string]string, file string) (config, error) {
	t.Helper()
	var o options
	fs := pflag.NewFlagSet("rlsd", pflag.ContinueOnError)
	o.addFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("flags %q: %v", args, err)
	}
	path := ""
	if file != "" {
		path = writeFile(t, file)
	}
	c := defaultConfig()
	err := c.merge(path, envFrom(env), fs, &o.flags)
	return c, err
}

// TestEverySetting sets each setting by its flag, its environment variable
// and its file key, and checks that exactly that setting changed; and that
// the table names every setting rlsd has.
func TestEverySetting(t *testing.T) {
	for _, s := range settingNames {
		want := defaultConfig()
		s.set(&want)
		for _, src := range []struct {
			how  string
			args []string
			env  map[string]string
			file string
		}{
			{"flag", []string{"--" + s.name + "=" + s.value}, nil, ""},
			{"env", nil, map[string]string{s.env: s.value}, ""},
			{"file", nil, nil, s.name + ": " + s.value + "\n"},
		} {
			got, err := mergeArgs(t, src.args, src.env, src.file)
			if err != nil {
				t.Errorf("%s by %s: %v", s.name, src.how, err)
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s = %q by %s: settings changed: %q", s.name, s.value, src.how, changedSettings(defaultConfig(), got, nil))
			}
		}
	}
	var names []string
	d := defaultConfig()
	for _, b := range d.bindings() {
		if b.flag {
			names = append(names, b.name)
		}
	}
	var listed []string
	for _, s := range settingNames {
		listed = append(listed, s.name)
	}
	if !slices.Equal(names, listed) {
		t.Errorf("rlsd's settings, in order, are\n%q\nthe table here lists\n%q", names, listed)
	}
}

// TestFileOnlySettings reads the structured settings from a file; they
// have no flag and no variable.
func TestFileOnlySettings(t *testing.T) {
	got, err := mergeArgs(t, nil, map[string]string{"RLSD_UPDATE_TARGETS": "x", "RLSD_ACL": "x", "RLSD_MIRROR_ROUTES": "x"}, `
update-targets:
  - addr: rli:7700
    mode: bloom
    deltas: false
    interval: 1h
    patterns: ["1*", "2*"]
acl:
  - {identity: "CN=nso", permissions: [rli_update], speak_for: "nso"}
mirror-routes:
  - {series: "hmi.*", authority: "jsoc=jsoc:7600"}
`)
	if err != nil {
		t.Fatal(err)
	}
	no := false
	want := defaultConfig()
	want.UpdateTargets = []targetConfig{{Addr: "rli:7700", Mode: "bloom", Deltas: &no, Interval: time.Hour, Patterns: []string{"1*", "2*"}}}
	want.ACL = []secure.Rule{{Identity: "CN=nso", Permissions: []secure.Permission{secure.RLIUpdate}, SpeakFor: "nso"}}
	want.MirrorRoutes = []routeConfig{{Series: "hmi.*", Authority: "jsoc=jsoc:7600"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("settings changed: %q; got %+v", changedSettings(want, got, nil), got)
	}
	for _, name := range []string{"update-targets", "acl", "mirror-routes"} {
		fs := pflag.NewFlagSet("rlsd", pflag.ContinueOnError)
		(&options{}).addFlags(fs)
		if fs.Lookup(name) != nil {
			t.Errorf("%s has a flag", name)
		}
	}
}

// TestSettingSyntax checks the forms each source accepts beyond the plain
// ones of TestEverySetting.
func TestSettingSyntax(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		file string
		set  func(*config)
	}{
		{name: "file list", file: "export-root: [/a, '/b,c']\nroles: [lrc, transfer]\n",
			set: func(c *config) { c.ExportRoots, c.Roles = pathList{"/a", "/b,c"}, roleList{"lrc", "transfer"} }},
		{name: "file comma string", file: "update-to: 'a:1, b:2,'\n", set: func(c *config) { c.UpdateTo = pathList{"a:1", "b:2"} }},
		{name: "env list trimmed", env: map[string]string{"RLSD_ROLES": " lrc , rli,", "RLSD_MIRROR_INDEX": "a:1, b:2"},
			set: func(c *config) { c.Roles, c.MirrorIndex = roleList{"lrc", "rli"}, pathList{"a:1", "b:2"} }},
		{name: "flag list repeated", args: []string{"--export-root", "/a", "--export-root", "/b,/c"},
			set: func(c *config) { c.ExportRoots = pathList{"/a", "/b", "/c"} }},
		{name: "env integers are decimal", env: map[string]string{"RLSD_MIRROR_BULK_WORKERS": "010", "RLSD_INDEX_MAX_BLOOM_BITS": "04096", "RLSD_HTTP_MIN_WRITE_RATE": "099"},
			set: func(c *config) { c.MirrorBulkWorkers, c.IndexMaxBloomBits, c.HTTPMinWriteRate = 10, 4096, 99 }},
		{name: "env booleans", env: map[string]string{"RLSD_NO_SYNC": "1", "RLSD_PPROF": "T", "RLSD_UPDATE_DELTAS": "FALSE"},
			set: func(c *config) { c.NoSync, c.PProf = true, true }},
		{name: "empty env value", env: map[string]string{"RLSD_LOG_LEVEL": "", "RLSD_ROLES": ""},
			set: func(c *config) { c.LogLevel, c.Roles = "", nil }},
		{name: "empty file", file: "\n"},
		{name: "file boolean words", file: "no-sync: yes\npprof: on\n", set: func(c *config) { c.NoSync, c.PProf = true, true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mergeArgs(t, tc.args, tc.env, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			want := defaultConfig()
			if tc.set != nil {
				tc.set(&want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("settings changed: %q; got %+v", changedSettings(want, got, nil), got)
			}
		})
	}
}

// TestSettingErrors checks that a bad value or key is a usage error (exit
// 2) that names it.
func TestSettingErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		file string
		want []string // substrings of the error
	}{
		{name: "unknown key", file: "site: s\nlisten_addr: x\n", want: []string{`line 2: unknown key "listen_addr"`}},
		{name: "env-style key", file: "http_listen: x\n", want: []string{`unknown key "http_listen"`, `did you mean "http-listen"`}},
		{name: "flag spelling", file: "--site: x\n", want: []string{`unknown key "--site"`}},
		{name: "config is no key", file: "config: /etc/rls.yaml\n", want: []string{`unknown key "config"`}},
		{name: "unknown key inside a structured setting", file: "update-targets:\n  - adr: x\n", want: []string{"line 2", "adr"}},
		{name: "bad duration", file: "site: s\nshutdown-timeout: 10\n", want: []string{"line 2", "time.Duration"}},
		{name: "bad int", file: "mirror-tier: two\n", want: []string{"line 1", "two"}},
		{name: "not a mapping", file: "- site\n", want: []string{"line 1"}},
		{name: "bad env duration", env: map[string]string{"RLSD_UPDATE_INTERVAL": "10"}, want: []string{"RLSD_UPDATE_INTERVAL", "missing unit"}},
		{name: "bad env int", env: map[string]string{"RLSD_MIRROR_TIER": "0x2"}, want: []string{"RLSD_MIRROR_TIER", `"0x2"`}},
		{name: "bad env uint", env: map[string]string{"RLSD_INDEX_MAX_BLOOM_BITS": "-1"}, want: []string{"RLSD_INDEX_MAX_BLOOM_BITS"}},
		{name: "bad env float", env: map[string]string{"RLSD_UPDATE_BLOOM_FP": "1%"}, want: []string{"RLSD_UPDATE_BLOOM_FP"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mergeArgs(t, nil, tc.env, tc.file)
			if err == nil {
				t.Fatalf("no error, want one naming %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if !errors.As(err, new(usageError)) {
				t.Errorf("error %T is not a usageError (exit 2)", err)
			}
		})
	}
}

// TestChangedSettings names the settings two configurations differ in, by
// their names, leaving out the ones applied.
func TestChangedSettings(t *testing.T) {
	a, b := defaultConfig(), defaultConfig()
	b.HTTPListen, b.ACL, b.MirrorTier = ":1", []secure.Rule{{Identity: "x"}}, 2
	if got := changedSettings(a, b, []string{"acl"}); !slices.Equal(got, []string{"http-listen", "mirror-tier"}) {
		t.Errorf("changedSettings = %q", got)
	}
}
