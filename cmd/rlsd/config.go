package main

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
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
// setting is declared once, in bind, under one name: the flag
// (--http-listen), the file key (http-listen:) and, upper-cased with RLSD_
// in front, the environment variable (RLSD_HTTP_LISTEN); see settings.go.
// Adding a setting: a field here, its default in defaultConfig if it is not
// the zero value, and one line in bind (or bindMirror).
type config struct {
	Site            string
	Data            string
	Listen          string
	Roles           roleList
	HTTPListen      string
	LogFormat       string
	LogLevel        string
	NoSync          bool
	CatalogDSN      string
	ShutdownTimeout time.Duration
	ExportRoots     pathList
	PProf           bool
	StatsInterval   time.Duration
	GoGC            int

	IndexExpireInterval    time.Duration
	IndexMaxBloomBits      uint64
	IndexMaxSites          int
	IndexUpdateIdleTimeout time.Duration
	HTTPIdleTimeout        time.Duration
	HTTPWriteTimeout       time.Duration
	HTTPMinWriteRate       int64
	HTTPMaxConns           int
	// Soft-state updates to indexes (role lrc); see update.go.
	Advertise        string
	UpdateTo         pathList
	UpdateMode       string
	UpdateDeltas     bool
	UpdateInterval   time.Duration
	UpdateValidity   time.Duration
	UpdateDeltaDelay time.Duration
	UpdateBloomFP    float64
	UpdateTargets    []targetConfig // file only

	// Security; see security.go.
	TLSCert     string
	TLSKey      string
	TLSClientCA string
	ACL         []secure.Rule // file only
	// The mirror role; see mirror.go.
	MirrorIndex           pathList
	MirrorStore           string
	MirrorTier            int
	MirrorAuthority       string
	MirrorRoutes          []routeConfig // file only
	MirrorUserWorkers     int
	MirrorBulkWorkers     int
	MirrorSourceMin       int
	MirrorSourceMax       int
	MirrorRetryBase       time.Duration
	MirrorRetryCap        time.Duration
	MirrorPendingInterval time.Duration
	MirrorBatchUnits      int
	MirrorBatchBytes      int64
	MirrorBatchIdle       time.Duration
	MirrorOnDone          string
	MirrorIntakeDSN       string
	MirrorIntakeTable     string
	MirrorIntakeChannel   string
	MirrorIntakePoll      time.Duration
	MirrorIntakeBatch     int
}

func defaultConfig() config {
	return config{
		Listen:          "127.0.0.1:7600",
		Roles:           roleList{"lrc"},
		LogFormat:       "text",
		LogLevel:        "info",
		ShutdownTimeout: 10 * time.Second,
		StatsInterval:   time.Minute,
		GoGC:            defaultGoGC,

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
		MirrorBulkWorkers:     16,
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

// bind declares every setting of c, in the order help and reload messages
// list them. The file-only ones are the structured settings.
func (c *config) bind(b *binder) {
	b.flag(&c.Site, "site", "this site's unique name (required)")
	b.flag(&c.Data, "data", "data directory; the catalog lives in DATA/catalog (required)")
	b.flag(&c.Listen, "listen", "gRPC listen address, HOST:PORT (port 0 picks a free port)")
	b.flag(&c.Roles, "roles", "comma-separated roles to run: "+strings.Join(knownRoles(), ", "))
	b.flag(&c.HTTPListen, "http-listen", "HTTP listen address for the status page (/), /metrics and /healthz; empty: no HTTP")
	b.flag(&c.LogFormat, "log-format", "log format: text or json")
	b.flag(&c.LogLevel, "log-level", "log level: debug, info, warn or error")
	b.flag(&c.NoSync, "no-sync", "acknowledge catalog writes before they are fsynced (faster; a crash may lose the last writes)")
	b.flag(&c.CatalogDSN, "catalog-dsn", "lrc role: keep the catalog in this PostgreSQL database (postgres://...) instead of DATA/catalog; several rlsd of one site may share it")
	b.flag(&c.ShutdownTimeout, "shutdown-timeout", "on SIGTERM, how long calls in flight may take to finish")
	b.flag(&c.ExportRoots, "export-root", "transfer role: comma-separated absolute directories whose storage units are served")
	b.flag(&c.PProf, "pprof", "serve Go's profiles under /debug/pprof/ on the HTTP listener")
	b.flag(&c.StatsInterval, "stats-interval", `how often to log an "rlsd stats" line; 0: never`)
	b.flag(&c.GoGC, "gogc", "Go garbage collector target percentage (as GOGC; the GOGC environment variable, when set, wins); 0: Go's default of 100")

	b.flag(&c.IndexExpireInterval, "index-expire-interval", "rli role: how often sites whose soft state expired are dropped (lookups never return them)")
	b.flag(&c.IndexMaxBloomBits, "index-max-bloom-bits", fmt.Sprintf("rli role: the largest Bloom filter (m, bits) accepted from a site, at most %d", uint64(index.MaxBloomBits)))
	b.flag(&c.IndexMaxSites, "index-max-sites", "rli role: the most sites the index holds; state for a new site beyond it is refused (RESOURCE_EXHAUSTED)")
	b.flag(&c.IndexUpdateIdleTimeout, "index-update-idle-timeout", "rli role: an update stream silent for this long is cut off and not applied")
	b.flag(&c.HTTPIdleTimeout, "http-idle-timeout", "HTTP: how long a keep-alive connection may wait for its next request")
	b.flag(&c.HTTPWriteTimeout, "http-write-timeout", "HTTP: time a response may take to write, plus its bytes at --http-min-write-rate")
	b.flag(&c.HTTPMinWriteRate, "http-min-write-rate", "HTTP: the slowest rate (bytes/s) a client may read a response at, beyond --http-write-timeout")
	b.flag(&c.HTTPMaxConns, "http-max-conns", "HTTP: the most connections served at once (more wait to be accepted); 0: half the open-file limit")

	b.flag(&c.Advertise, "advertise", "this site's gRPC address as other sites reach it, HOST:PORT, sent in index updates (default: the bound listen address)")
	b.flag(&c.UpdateTo, "update-to", "lrc role: comma-separated index addresses to send soft state to (more, with their own settings, under update-targets: in the config file)")
	b.flag(&c.UpdateMode, "update-mode", "index updates: list, bloom, or delta (a full list every interval, deltas in between)")
	b.flag(&c.UpdateDeltas, "update-deltas", "index updates: also send deltas between full list or bloom updates")
	b.flag(&c.UpdateInterval, "update-interval", "index updates: time between full updates")
	b.flag(&c.UpdateValidity, "update-validity", "index updates: how long an index keeps each update; longer than the interval")
	b.flag(&c.UpdateDeltaDelay, "update-delta-delay", "index updates: how soon after a catalog write its delta is sent")
	b.flag(&c.UpdateBloomFP, "update-bloom-fp", "index updates: Bloom filters' false-positive rate, in (0, 1)")
	b.fileOnly(&c.UpdateTargets, "update-targets")

	b.flag(&c.TLSCert, "tls-cert", "this site's certificate (PEM): serve gRPC and HTTP over TLS, and present it when calling other sites")
	b.flag(&c.TLSKey, "tls-key", "the certificate's private key (PEM)")
	b.flag(&c.TLSClientCA, "tls-client-ca", "CA certificate(s) (PEM): require client certificates signed by it (mutual TLS), and trust it for the sites this one calls")
	b.fileOnly(&c.ACL, "acl")

	c.bindMirror(b)
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
	fs.StringVar(&o.configFile, "config", "", "YAML configuration file with the keys below (env RLSD_CONFIG)")
	o.flags = defaultConfig()
	o.flags.bind(&binder{fs: fs})
}

// resolve merges the configuration: defaults, then the configuration file
// (--config, else RLSD_CONFIG), then environment variables, then the flags
// set in fs, and validates the result. getenv is os.LookupEnv outside tests.
// Every error is a usageError naming the key, the variable or the file.
func (o *options) resolve(fs *pflag.FlagSet, getenv func(string) (string, bool)) (config, error) {
	c := defaultConfig()
	path := o.configFile
	if !fs.Changed("config") {
		path, _ = getenv(envName("config"))
	}
	if err := c.merge(path, getenv, fs, &o.flags); err != nil {
		return config{}, err
	}
	return c, c.validate()
}

// validate checks a merged configuration; its errors are usageErrors.
func (c *config) validate() error {
	for _, req := range []struct{ name, val string }{{"site", c.Site}, {"data", c.Data}, {"listen", c.Listen}} {
		if req.val == "" {
			return usageErrorf("missing required setting %q (--%s, %s or %s: in the config file)",
				req.name, req.name, envName(req.name), req.name)
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
	if c.GoGC < 0 {
		return usageErrorf("gogc %d: must not be negative (0 keeps Go's default)", c.GoGC)
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
