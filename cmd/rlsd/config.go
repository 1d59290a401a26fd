package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/index"
	"github.com/solar-archive/rls/internal/secure"
	"github.com/solar-archive/rls/mirror"
	"github.com/solar-archive/rls/mirror/intake"
)

// config is the daemon's configuration once flags, environment and the
// configuration file have been merged (flags > env > file > defaults). Each
// field has one name, used as the flag (--http-listen), the file key
// (http-listen:) and, upper-cased with RLSD_ in front, the environment
// variable (RLSD_HTTP_LISTEN).
type config struct {
	Site            string        `yaml:"site"`
	Data            string        `yaml:"data"`
	Listen          string        `yaml:"listen"`
	Roles           roleList      `yaml:"roles"`
	HTTPListen      string        `yaml:"http-listen"`
	LogFormat       string        `yaml:"log-format"`
	LogLevel        string        `yaml:"log-level"`
	NoSync          bool          `yaml:"no-sync"`
	CatalogDSN      string        `yaml:"catalog-dsn"`
	ShutdownTimeout time.Duration `yaml:"shutdown-timeout"`
	ExportRoots     pathList      `yaml:"export-root"`
	PProf           bool          `yaml:"pprof"`
	StatsInterval   time.Duration `yaml:"stats-interval"`

	IndexExpireInterval    time.Duration `yaml:"index-expire-interval"`
	IndexMaxBloomBits      uint64        `yaml:"index-max-bloom-bits"`
	IndexMaxSites          int           `yaml:"index-max-sites"`
	IndexUpdateIdleTimeout time.Duration `yaml:"index-update-idle-timeout"`
	HTTPIdleTimeout        time.Duration `yaml:"http-idle-timeout"`
	HTTPWriteTimeout       time.Duration `yaml:"http-write-timeout"`
	HTTPMinWriteRate       int64         `yaml:"http-min-write-rate"`
	HTTPMaxConns           int           `yaml:"http-max-conns"`
	// Soft-state updates to indexes (role lrc); see update.go.
	Advertise        string         `yaml:"advertise"`
	UpdateTo         pathList       `yaml:"update-to"`
	UpdateMode       string         `yaml:"update-mode"`
	UpdateDeltas     bool           `yaml:"update-deltas"`
	UpdateInterval   time.Duration  `yaml:"update-interval"`
	UpdateValidity   time.Duration  `yaml:"update-validity"`
	UpdateDeltaDelay time.Duration  `yaml:"update-delta-delay"`
	UpdateBloomFP    float64        `yaml:"update-bloom-fp"`
	UpdateTargets    []targetConfig `yaml:"update-targets"` // file only

	// Security; see security.go.
	TLSCert     string        `yaml:"tls-cert"`
	TLSKey      string        `yaml:"tls-key"`
	TLSClientCA string        `yaml:"tls-client-ca"`
	ACL         []secure.Rule `yaml:"acl"` // file only
	// The mirror role; see mirror.go.
	MirrorIndex           pathList      `yaml:"mirror-index"`
	MirrorStore           string        `yaml:"mirror-store"`
	MirrorTier            int           `yaml:"mirror-tier"`
	MirrorAuthority       string        `yaml:"mirror-authority"`
	MirrorRoutes          []routeConfig `yaml:"mirror-routes"` // file only
	MirrorUserWorkers     int           `yaml:"mirror-user-workers"`
	MirrorBulkWorkers     int           `yaml:"mirror-bulk-workers"`
	MirrorSourceMin       int           `yaml:"mirror-source-min"`
	MirrorSourceMax       int           `yaml:"mirror-source-max"`
	MirrorRetryBase       time.Duration `yaml:"mirror-retry-base"`
	MirrorRetryCap        time.Duration `yaml:"mirror-retry-cap"`
	MirrorPendingInterval time.Duration `yaml:"mirror-pending-interval"`
	MirrorBatchUnits      int           `yaml:"mirror-batch-units"`
	MirrorBatchBytes      int64         `yaml:"mirror-batch-bytes"`
	MirrorBatchIdle       time.Duration `yaml:"mirror-batch-idle"`
	MirrorOnDone          string        `yaml:"mirror-on-done"`
	MirrorIntakeDSN       string        `yaml:"mirror-intake-dsn"`
	MirrorIntakeTable     string        `yaml:"mirror-intake-table"`
	MirrorIntakeChannel   string        `yaml:"mirror-intake-channel"`
	MirrorIntakePoll      time.Duration `yaml:"mirror-intake-poll-interval"`
	MirrorIntakeBatch     int           `yaml:"mirror-intake-batch-size"`
}

func defaultConfig() config {
	return config{
		Listen:          "127.0.0.1:7600",
		Roles:           roleList{"lrc"},
		LogFormat:       "text",
		LogLevel:        "info",
		ShutdownTimeout: 10 * time.Second,
		StatsInterval:   time.Minute,

		IndexExpireInterval:    time.Minute,
		IndexMaxBloomBits:      index.DefaultMaxBloomBits,
		IndexMaxSites:          index.DefaultMaxSites,
		IndexUpdateIdleTimeout: api.DefaultUpdateIdleTimeout,
		HTTPIdleTimeout:        defaultHTTPIdleTimeout,
		HTTPWriteTimeout:       defaultHTTPWriteTimeout,
		HTTPMinWriteRate:       defaultHTTPMinWriteRate,
		UpdateMode:             "list",
		UpdateInterval:         index.DefaultInterval,
		UpdateValidity:         index.DefaultValidity,
		UpdateDeltaDelay:       index.DefaultDeltaDelay,
		UpdateBloomFP:          index.DefaultFalsePositiveRate,

		MirrorTier:            1,
		MirrorUserWorkers:     2,
		MirrorBulkWorkers:     8,
		MirrorSourceMin:       2,
		MirrorSourceMax:       16,
		MirrorRetryBase:       mirror.DefaultRetry.Base,
		MirrorRetryCap:        mirror.DefaultRetry.Cap,
		MirrorPendingInterval: 10 * time.Minute,
		MirrorBatchUnits:      mirror.DefaultBatch.Units,
		MirrorBatchBytes:      mirror.DefaultBatch.Bytes,
		MirrorBatchIdle:       mirror.DefaultBatch.Idle,
		MirrorIntakeTable:     intake.DefaultTable,
		MirrorIntakeChannel:   intake.DefaultChannel,
		MirrorIntakePoll:      intake.DefaultPollInterval,
		MirrorIntakeBatch:     intake.DefaultBatchSize,
	}
}

// roleList is the roles setting. In the configuration file it is a list or
// a comma-separated string; on the command line and in the environment, a
// comma-separated string.
type roleList []string

func (r *roleList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*r = splitRoles(n.Value)
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*r = l
	return nil
}

func splitRoles(s string) roleList {
	var out roleList
	for r := range strings.SplitSeq(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// setting is one configuration key: how an environment variable sets it, and
// how a flag given on the command line overrides it.
type setting struct {
	name     string
	parseEnv func(c *config, s string) error
	fromFlag func(dst, src *config)
}

func (s setting) env() string {
	return "RLSD_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

func settings() []setting {
	str := func(name string, field func(*config) *string) setting {
		return setting{
			name:     name,
			parseEnv: func(c *config, s string) error { *field(c) = s; return nil },
			fromFlag: func(dst, src *config) { *field(dst) = *field(src) },
		}
	}
	integer := func(name string, field func(*config) *int64) setting {
		return setting{
			name: name,
			parseEnv: func(c *config, s string) (err error) {
				*field(c), err = strconv.ParseInt(s, 10, 64)
				return err
			},
			fromFlag: func(dst, src *config) { *field(dst) = *field(src) },
		}
	}
	dur := func(name string, field func(*config) *time.Duration) setting {
		return setting{
			name: name,
			parseEnv: func(c *config, s string) (err error) {
				*field(c), err = time.ParseDuration(s)
				return err
			},
			fromFlag: func(dst, src *config) { *field(dst) = *field(src) },
		}
	}
	intg := func(name string, field func(*config) *int) setting {
		return setting{
			name: name,
			parseEnv: func(c *config, s string) (err error) {
				*field(c), err = strconv.Atoi(s)
				return err
			},
			fromFlag: func(dst, src *config) { *field(dst) = *field(src) },
		}
	}
	return []setting{
		str("site", func(c *config) *string { return &c.Site }),
		str("data", func(c *config) *string { return &c.Data }),
		str("listen", func(c *config) *string { return &c.Listen }),
		{
			name:     "roles",
			parseEnv: func(c *config, s string) error { c.Roles = splitRoles(s); return nil },
			fromFlag: func(dst, src *config) { dst.Roles = src.Roles },
		},
		str("http-listen", func(c *config) *string { return &c.HTTPListen }),
		str("log-format", func(c *config) *string { return &c.LogFormat }),
		str("log-level", func(c *config) *string { return &c.LogLevel }),
		str("catalog-dsn", func(c *config) *string { return &c.CatalogDSN }),
		{
			name: "no-sync",
			parseEnv: func(c *config, s string) (err error) {
				c.NoSync, err = strconv.ParseBool(s)
				return err
			},
			fromFlag: func(dst, src *config) { dst.NoSync = src.NoSync },
		},
		{
			name: "shutdown-timeout",
			parseEnv: func(c *config, s string) (err error) {
				c.ShutdownTimeout, err = time.ParseDuration(s)
				return err
			},
			fromFlag: func(dst, src *config) { dst.ShutdownTimeout = src.ShutdownTimeout },
		},
		{
			name:     "export-root",
			parseEnv: func(c *config, s string) error { c.ExportRoots = splitPaths(s); return nil },
			fromFlag: func(dst, src *config) { dst.ExportRoots = src.ExportRoots },
		},
		{
			name: "pprof",
			parseEnv: func(c *config, s string) (err error) {
				c.PProf, err = strconv.ParseBool(s)
				return err
			},
			fromFlag: func(dst, src *config) { dst.PProf = src.PProf },
		},
		dur("stats-interval", func(c *config) *time.Duration { return &c.StatsInterval }),
		{
			name: "index-expire-interval",
			parseEnv: func(c *config, s string) (err error) {
				c.IndexExpireInterval, err = time.ParseDuration(s)
				return err
			},
			fromFlag: func(dst, src *config) { dst.IndexExpireInterval = src.IndexExpireInterval },
		},
		{
			name: "index-max-bloom-bits",
			parseEnv: func(c *config, s string) (err error) {
				c.IndexMaxBloomBits, err = strconv.ParseUint(s, 10, 64)
				return err
			},
			fromFlag: func(dst, src *config) { dst.IndexMaxBloomBits = src.IndexMaxBloomBits },
		},
		{
			name: "index-max-sites",
			parseEnv: func(c *config, s string) (err error) {
				c.IndexMaxSites, err = strconv.Atoi(s)
				return err
			},
			fromFlag: func(dst, src *config) { dst.IndexMaxSites = src.IndexMaxSites },
		},
		dur("index-update-idle-timeout", func(c *config) *time.Duration { return &c.IndexUpdateIdleTimeout }),
		dur("http-idle-timeout", func(c *config) *time.Duration { return &c.HTTPIdleTimeout }),
		dur("http-write-timeout", func(c *config) *time.Duration { return &c.HTTPWriteTimeout }),
		integer("http-min-write-rate", func(c *config) *int64 { return &c.HTTPMinWriteRate }),
		{
			name: "http-max-conns",
			parseEnv: func(c *config, s string) (err error) {
				c.HTTPMaxConns, err = strconv.Atoi(s)
				return err
			},
			fromFlag: func(dst, src *config) { dst.HTTPMaxConns = src.HTTPMaxConns },
		},
		str("advertise", func(c *config) *string { return &c.Advertise }),
		str("tls-cert", func(c *config) *string { return &c.TLSCert }),
		str("tls-key", func(c *config) *string { return &c.TLSKey }),
		str("tls-client-ca", func(c *config) *string { return &c.TLSClientCA }),
		{
			name:     "update-to",
			parseEnv: func(c *config, s string) error { c.UpdateTo = splitPaths(s); return nil },
			fromFlag: func(dst, src *config) { dst.UpdateTo = src.UpdateTo },
		},
		str("update-mode", func(c *config) *string { return &c.UpdateMode }),
		{
			name: "update-deltas",
			parseEnv: func(c *config, s string) (err error) {
				c.UpdateDeltas, err = strconv.ParseBool(s)
				return err
			},
			fromFlag: func(dst, src *config) { dst.UpdateDeltas = src.UpdateDeltas },
		},
		dur("update-interval", func(c *config) *time.Duration { return &c.UpdateInterval }),
		dur("update-validity", func(c *config) *time.Duration { return &c.UpdateValidity }),
		dur("update-delta-delay", func(c *config) *time.Duration { return &c.UpdateDeltaDelay }),
		{
			name: "update-bloom-fp",
			parseEnv: func(c *config, s string) (err error) {
				c.UpdateBloomFP, err = strconv.ParseFloat(s, 64)
				return err
			},
			fromFlag: func(dst, src *config) { dst.UpdateBloomFP = src.UpdateBloomFP },
		},
		{
			name:     "mirror-index",
			parseEnv: func(c *config, s string) error { c.MirrorIndex = splitPaths(s); return nil },
			fromFlag: func(dst, src *config) { dst.MirrorIndex = src.MirrorIndex },
		},
		str("mirror-store", func(c *config) *string { return &c.MirrorStore }),
		intg("mirror-tier", func(c *config) *int { return &c.MirrorTier }),
		str("mirror-authority", func(c *config) *string { return &c.MirrorAuthority }),
		intg("mirror-user-workers", func(c *config) *int { return &c.MirrorUserWorkers }),
		intg("mirror-bulk-workers", func(c *config) *int { return &c.MirrorBulkWorkers }),
		intg("mirror-source-min", func(c *config) *int { return &c.MirrorSourceMin }),
		intg("mirror-source-max", func(c *config) *int { return &c.MirrorSourceMax }),
		dur("mirror-retry-base", func(c *config) *time.Duration { return &c.MirrorRetryBase }),
		dur("mirror-retry-cap", func(c *config) *time.Duration { return &c.MirrorRetryCap }),
		dur("mirror-pending-interval", func(c *config) *time.Duration { return &c.MirrorPendingInterval }),
		intg("mirror-batch-units", func(c *config) *int { return &c.MirrorBatchUnits }),
		integer("mirror-batch-bytes", func(c *config) *int64 { return &c.MirrorBatchBytes }),
		dur("mirror-batch-idle", func(c *config) *time.Duration { return &c.MirrorBatchIdle }),
		str("mirror-on-done", func(c *config) *string { return &c.MirrorOnDone }),
		str("mirror-intake-dsn", func(c *config) *string { return &c.MirrorIntakeDSN }),
		str("mirror-intake-table", func(c *config) *string { return &c.MirrorIntakeTable }),
		str("mirror-intake-channel", func(c *config) *string { return &c.MirrorIntakeChannel }),
		dur("mirror-intake-poll-interval", func(c *config) *time.Duration { return &c.MirrorIntakePoll }),
		intg("mirror-intake-batch-size", func(c *config) *int { return &c.MirrorIntakeBatch }),
	}
}

// options are the daemon's command-line flags. Not safe for concurrent use.
type options struct {
	configFile string
	// flags holds the values given on the command line; resolve uses only
	// those of flags the user set.
	flags config
}

// addFlags binds the flags to o. The defaults shown in help are the
// configuration defaults; they do not take part in the merge.
func (o *options) addFlags(fs *pflag.FlagSet) {
	d := defaultConfig()
	fs.StringVar(&o.configFile, "config", "", "YAML configuration file with the keys below (env RLSD_CONFIG)")
	fs.StringVar(&o.flags.Site, "site", "", "this site's unique name (required)")
	fs.StringVar(&o.flags.Data, "data", "", "data directory; the catalog lives in DATA/catalog (required)")
	fs.StringVar(&o.flags.Listen, "listen", d.Listen, "gRPC listen address, HOST:PORT (port 0 picks a free port)")
	fs.StringSliceVar((*[]string)(&o.flags.Roles), "roles", d.Roles, "comma-separated roles to run: "+strings.Join(knownRoles(), ", "))
	fs.StringVar(&o.flags.HTTPListen, "http-listen", d.HTTPListen, "HTTP listen address for the status page (/), /metrics and /healthz; empty: no HTTP")
	fs.StringVar(&o.flags.LogFormat, "log-format", d.LogFormat, "log format: text or json")
	fs.StringVar(&o.flags.LogLevel, "log-level", d.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&o.flags.CatalogDSN, "catalog-dsn", "", "lrc role: keep the catalog in this PostgreSQL database (postgres://...) instead of DATA/catalog; several rlsd of one site may share it")
	fs.BoolVar(&o.flags.NoSync, "no-sync", d.NoSync, "acknowledge catalog writes before they are fsynced (faster; a crash may lose the last writes)")
	fs.DurationVar(&o.flags.ShutdownTimeout, "shutdown-timeout", d.ShutdownTimeout, "on SIGTERM, how long calls in flight may take to finish")
	fs.BoolVar(&o.flags.PProf, "pprof", d.PProf, "serve Go's profiles under /debug/pprof/ on the HTTP listener")
	fs.DurationVar(&o.flags.StatsInterval, "stats-interval", d.StatsInterval, `how often to log an "rlsd stats" line; 0: never`)
	fs.StringSliceVar((*[]string)(&o.flags.ExportRoots), "export-root", nil, "transfer role: comma-separated absolute directories whose storage units are served")
	fs.DurationVar(&o.flags.IndexExpireInterval, "index-expire-interval", d.IndexExpireInterval, "rli role: how often sites whose soft state expired are dropped (lookups never return them)")
	fs.Uint64Var(&o.flags.IndexMaxBloomBits, "index-max-bloom-bits", d.IndexMaxBloomBits, fmt.Sprintf("rli role: the largest Bloom filter (m, bits) accepted from a site, at most %d", uint64(index.MaxBloomBits)))
	fs.IntVar(&o.flags.IndexMaxSites, "index-max-sites", d.IndexMaxSites, "rli role: the most sites the index holds; state for a new site beyond it is refused (RESOURCE_EXHAUSTED)")
	fs.DurationVar(&o.flags.IndexUpdateIdleTimeout, "index-update-idle-timeout", d.IndexUpdateIdleTimeout, "rli role: an update stream silent for this long is cut off and not applied")
	fs.DurationVar(&o.flags.HTTPIdleTimeout, "http-idle-timeout", d.HTTPIdleTimeout, "HTTP: how long a keep-alive connection may wait for its next request")
	fs.DurationVar(&o.flags.HTTPWriteTimeout, "http-write-timeout", d.HTTPWriteTimeout, "HTTP: time a response may take to write, plus its bytes at --http-min-write-rate")
	fs.Int64Var(&o.flags.HTTPMinWriteRate, "http-min-write-rate", d.HTTPMinWriteRate, "HTTP: the slowest rate (bytes/s) a client may read a response at, beyond --http-write-timeout")
	fs.IntVar(&o.flags.HTTPMaxConns, "http-max-conns", d.HTTPMaxConns, "HTTP: the most connections served at once (more wait to be accepted); 0: half the open-file limit")
	fs.StringVar(&o.flags.Advertise, "advertise", "", "this site's gRPC address as other sites reach it, HOST:PORT, sent in index updates (default: the bound listen address)")
	fs.StringSliceVar((*[]string)(&o.flags.UpdateTo), "update-to", nil, "lrc role: comma-separated index addresses to send soft state to (more, with their own settings, under update-targets: in the config file)")
	fs.StringVar(&o.flags.UpdateMode, "update-mode", d.UpdateMode, "index updates: list, bloom, or delta (a full list every interval, deltas in between)")
	fs.BoolVar(&o.flags.UpdateDeltas, "update-deltas", d.UpdateDeltas, "index updates: also send deltas between full list or bloom updates")
	fs.DurationVar(&o.flags.UpdateInterval, "update-interval", d.UpdateInterval, "index updates: time between full updates")
	fs.DurationVar(&o.flags.UpdateValidity, "update-validity", d.UpdateValidity, "index updates: how long an index keeps each update; longer than the interval")
	fs.DurationVar(&o.flags.UpdateDeltaDelay, "update-delta-delay", d.UpdateDeltaDelay, "index updates: how soon after a catalog write its delta is sent")
	fs.Float64Var(&o.flags.UpdateBloomFP, "update-bloom-fp", d.UpdateBloomFP, "index updates: Bloom filters' false-positive rate, in (0, 1)")
	fs.StringVar(&o.flags.TLSCert, "tls-cert", "", "this site's certificate (PEM): serve gRPC and HTTP over TLS, and present it when calling other sites")
	fs.StringVar(&o.flags.TLSKey, "tls-key", "", "the certificate's private key (PEM)")
	fs.StringVar(&o.flags.TLSClientCA, "tls-client-ca", "", "CA certificate(s) (PEM): require client certificates signed by it (mutual TLS), and trust it for the sites this one calls")
	o.addMirrorFlags(fs, d)
}

// resolve merges the configuration: defaults, then the configuration file
// (--config, else RLSD_CONFIG), then environment variables, then the flags
// set in fs, and validates the result. getenv is os.LookupEnv outside tests.
// Every error is a usageError naming the key, the variable or the file.
func (o *options) resolve(fs *pflag.FlagSet, getenv func(string) (string, bool)) (config, error) {
	c := defaultConfig()
	path := o.configFile
	if !fs.Changed("config") {
		path, _ = getenv("RLSD_CONFIG")
	}
	if path != "" {
		if err := loadConfigFile(path, &c); err != nil {
			return config{}, usageError{err}
		}
	}
	for _, s := range settings() {
		if v, ok := getenv(s.env()); ok {
			if err := s.parseEnv(&c, v); err != nil {
				return config{}, usageErrorf("%s=%q: %v", s.env(), v, err)
			}
		}
	}
	for _, s := range settings() {
		if fs.Changed(s.name) {
			s.fromFlag(&c, &o.flags)
		}
	}
	return c, c.validate()
}

// loadConfigFile reads a YAML configuration file over c. It is strict: an
// unknown key is an error that names it.
func loadConfigFile(path string, c *config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) { // io.EOF: empty file
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// validate checks a merged configuration; its errors are usageErrors.
func (c *config) validate() error {
	for _, req := range []struct{ name, val string }{{"site", c.Site}, {"data", c.Data}, {"listen", c.Listen}} {
		if req.val == "" {
			return usageErrorf("missing required setting %q (--%s, RLSD_%s or %s: in the config file)",
				req.name, req.name, strings.ToUpper(req.name), req.name)
		}
	}
	if len(c.Roles) == 0 {
		return usageErrorf("no roles to run (known roles: %s)", strings.Join(knownRoles(), ", "))
	}
	var roles roleList
	for _, r := range c.Roles {
		if !slices.Contains(knownRoles(), r) {
			return usageErrorf("unknown role %q in roles (known roles: %s)", r, strings.Join(knownRoles(), ", "))
		}
		if !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	c.Roles = roles
	if m := missingRoles(roles); len(m) > 0 {
		return usageErrorf("roles %s: %s (add them: --roles %s)", strings.Join(roles, ","), strings.Join(m, "; "),
			strings.Join(startOrder(withNeeds(roles)), ","))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return usageErrorf("log-format %q: want text or json", c.LogFormat)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return usageError{err}
	}
	if c.ShutdownTimeout <= 0 {
		return usageErrorf("shutdown-timeout %v: must be positive", c.ShutdownTimeout)
	}
	if c.StatsInterval < 0 {
		return usageErrorf("stats-interval %v: must not be negative (0 turns the stats line off)", c.StatsInterval)
	}
	if c.PProf && c.HTTPListen == "" {
		return usageErrorf("pprof is served on the HTTP listener: set http-listen too")
	}
	if c.IndexExpireInterval <= 0 {
		return usageErrorf("index-expire-interval %v: must be positive", c.IndexExpireInterval)
	}
	if c.IndexMaxBloomBits < index.MinBloomBits || c.IndexMaxBloomBits > index.MaxBloomBits {
		return usageErrorf("index-max-bloom-bits %d: out of range [%d, %d]", c.IndexMaxBloomBits, index.MinBloomBits, uint64(index.MaxBloomBits))
	}
	if c.IndexMaxSites <= 0 {
		return usageErrorf("index-max-sites %d: must be positive", c.IndexMaxSites)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"index-update-idle-timeout", c.IndexUpdateIdleTimeout}, {"http-idle-timeout", c.HTTPIdleTimeout}, {"http-write-timeout", c.HTTPWriteTimeout}} {
		if d.v <= 0 {
			return usageErrorf("%s %v: must be positive", d.name, d.v)
		}
	}
	if c.HTTPMinWriteRate <= 0 {
		return usageErrorf("http-min-write-rate %d: must be positive (bytes per second)", c.HTTPMinWriteRate)
	}
	if c.HTTPMaxConns < 0 {
		return usageErrorf("http-max-conns %d: must be 0 (automatic) or positive", c.HTTPMaxConns)
	}
	if err := c.validateTransfer(); err != nil {
		return err
	}
	if err := c.validateMirror(); err != nil {
		return err
	}
	if _, err := c.updateTargets(); err != nil {
		return err
	}
	if _, err := c.loadSecurity(); err != nil {
		return err
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	switch s {
	case "debug", "info", "warn", "error":
		return l, l.UnmarshalText([]byte(s))
	}
	return l, fmt.Errorf("log-level %q: want debug, info, warn or error", s)
}

// newLogger returns the daemon's logger, writing to w in c's format and level.
func newLogger(c config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel) // validated
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// usageError is a mistake in the command line or the configuration; rlsd
// exits with status 2 for it.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}
