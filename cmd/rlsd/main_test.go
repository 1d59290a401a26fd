package main

import (
	"bufio"
	"cmp"
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/solar-archive/rls/api/rlsv1"
)

func envFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rlsd.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func resolveArgs(args []string, env map[string]string) (config, error) {
	var o options
	fs := pflag.NewFlagSet("rlsd", pflag.ContinueOnError)
	o.addFlags(fs)
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	return o.resolve(fs, envFrom(env))
}

func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, `
site: file-site
data: /file/data
listen: 127.0.0.1:1111
roles: [lrc]
log-level: warn
no-sync: true
shutdown-timeout: 3s
`)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want config
	}{
		{
			name: "defaults",
			args: []string{"--site", "s", "--data", "/d"},
			want: config{Site: "s", Data: "/d", Listen: "127.0.0.1:7600", Roles: roleList{"lrc"}, LogFormat: "text", LogLevel: "info", ShutdownTimeout: 10 * time.Second},
		},
		{
			name: "file over defaults",
			args: []string{"--config", file},
			want: config{Site: "file-site", Data: "/file/data", Listen: "127.0.0.1:1111", Roles: roleList{"lrc"}, LogFormat: "text", LogLevel: "warn", NoSync: true, ShutdownTimeout: 3 * time.Second},
		},
		{
			name: "env over file",
			args: []string{"--config", file},
			env:  map[string]string{"RLSD_SITE": "env-site", "RLSD_LISTEN": "127.0.0.1:2222", "RLSD_NO_SYNC": "false", "RLSD_LOG_FORMAT": "json", "RLSD_HTTP_LISTEN": ":9100"},
			want: config{Site: "env-site", Data: "/file/data", Listen: "127.0.0.1:2222", HTTPListen: ":9100", Roles: roleList{"lrc"}, LogFormat: "json", LogLevel: "warn", ShutdownTimeout: 3 * time.Second},
		},
		{
			name: "flags over env over file",
			args: []string{"--site", "flag-site", "--no-sync=false", "--log-level", "debug"},
			env:  map[string]string{"RLSD_CONFIG": file, "RLSD_SITE": "env-site", "RLSD_LISTEN": "127.0.0.1:2222", "RLSD_LOG_LEVEL": "error"},
			want: config{Site: "flag-site", Data: "/file/data", Listen: "127.0.0.1:2222", Roles: roleList{"lrc"}, LogFormat: "text", LogLevel: "debug", ShutdownTimeout: 3 * time.Second},
		},
		{
			name: "roles as comma lists, duplicates dropped",
			args: []string{"--site", "s", "--roles", "lrc,lrc"},
			env:  map[string]string{"RLSD_DATA": "/d", "RLSD_ROLES": "bogus"},
			want: config{Site: "s", Data: "/d", Listen: "127.0.0.1:7600", Roles: roleList{"lrc"}, LogFormat: "text", LogLevel: "info", ShutdownTimeout: 10 * time.Second},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveArgs(tc.args, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			want := withMirrorDefaults(withLimitDefaults(withUpdateDefaults(tc.want)))
			want.IndexExpireInterval = cmp.Or(want.IndexExpireInterval, defaultConfig().IndexExpireInterval)
			want.StatsInterval = cmp.Or(want.StatsInterval, defaultConfig().StatsInterval)
			want.GoGC = cmp.Or(want.GoGC, defaultConfig().GoGC)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("config =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// TestConfigObservability checks pprof and stats-interval through file,
// environment and flags.
func TestConfigObservability(t *testing.T) {
	file := writeFile(t, "site: s\ndata: /d\nhttp-listen: 127.0.0.1:0\npprof: true\nstats-interval: 30s\n")
	for _, tc := range []struct {
		name      string
		args      []string
		env       map[string]string
		wantPProf bool
		wantStats time.Duration
	}{
		{"defaults", []string{"--site", "s", "--data", "/d"}, nil, false, time.Minute},
		{"file", []string{"--config", file}, nil, true, 30 * time.Second},
		{"env over file", []string{"--config", file}, map[string]string{"RLSD_PPROF": "false", "RLSD_STATS_INTERVAL": "0"}, false, 0},
		{"flags over env", []string{"--config", file, "--pprof", "--stats-interval", "5s"}, map[string]string{"RLSD_PPROF": "false"}, true, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveArgs(tc.args, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if got.PProf != tc.wantPProf || got.StatsInterval != tc.wantStats {
				t.Errorf("pprof %v, stats-interval %v; want %v, %v", got.PProf, got.StatsInterval, tc.wantPProf, tc.wantStats)
			}
		})
	}
}

func TestConfigFileRoles(t *testing.T) {
	for _, roles := range []string{"roles: lrc", "roles: [lrc]", "roles: 'lrc, lrc'"} {
		got, err := resolveArgs([]string{"--config", writeFile(t, "site: s\ndata: /d\n"+roles+"\n")}, nil)
		if err != nil {
			t.Fatalf("%s: %v", roles, err)
		}
		if !slices.Equal(got.Roles, []string{"lrc"}) {
			t.Errorf("%s: roles = %q", roles, got.Roles)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		file string
		want string // substring of the error
	}{
		{name: "unknown key", file: "site: s\ndata: /d\nlisten_addr: x\n", want: "listen_addr"},
		{name: "bad yaml value", file: "site: s\ndata: /d\nno-sync: maybe\n", want: "maybe"},
		{name: "bad file duration", file: "site: s\ndata: /d\nshutdown-timeout: 10\n", want: "line 3"},
		{name: "missing file", args: []string{"--config", "/nonexistent/rlsd.yaml"}, want: "/nonexistent/rlsd.yaml"},
		{name: "missing site", args: []string{"--data", "/d"}, want: `"site"`},
		{name: "missing data", args: []string{"--site", "s"}, want: `"data"`},
		{name: "unknown role", args: []string{"--site", "s", "--data", "/d", "--roles", "lrc,mirrorr"}, want: `unknown role "mirrorr"`},
		{name: "unknown role from env", args: []string{"--site", "s", "--data", "/d"}, env: map[string]string{"RLSD_ROLES": "archive"}, want: `"archive"`},
		{name: "no roles", args: []string{"--site", "s", "--data", "/d", "--roles", ""}, want: "no roles"},
		{name: "bad env bool", args: []string{"--site", "s", "--data", "/d"}, env: map[string]string{"RLSD_NO_SYNC": "yes please"}, want: "RLSD_NO_SYNC"},
		{name: "bad log format", args: []string{"--site", "s", "--data", "/d", "--log-format", "xml"}, want: "log-format"},
		{name: "bad log level", args: []string{"--site", "s", "--data", "/d", "--log-level", "loud"}, want: "log-level"},
		{name: "negative stats interval", args: []string{"--site", "s", "--data", "/d", "--stats-interval", "-1s"}, want: "stats-interval"},
		{name: "negative gogc", args: []string{"--site", "s", "--data", "/d", "--gogc", "-1"}, want: "gogc -1"},
		{name: "pprof without http", args: []string{"--site", "s", "--data", "/d", "--pprof"}, want: "http-listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append(args, "--config", writeFile(t, tc.file))
			}
			_, err := resolveArgs(args, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if _, ok := err.(usageError); !ok {
				t.Errorf("error %T is not a usageError (exit 2)", err)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"version"}, 0},
		{[]string{"--data", "/d"}, 2},
		{[]string{"--site", "s", "--data", "/d", "--roles", "transfer"}, 2},
		{[]string{"--no-such-flag"}, 2},
		{[]string{"extra-arg"}, 2},
		// The data directory cannot be created under a file: a runtime
		// failure, not a usage error.
		{[]string{"--site", "s", "--data", "/dev/null/rls", "--listen", "127.0.0.1:0"}, 1},
	} {
		var stderr strings.Builder
		if got := run(t.Context(), tc.args, envFrom(nil), io.Discard, &stderr); got != tc.code {
			t.Errorf("rlsd %q: exit %d, want %d (stderr %q)", tc.args, got, tc.code, stderr.String())
		}
	}
}

// serveInProcess runs the daemon in process with args (JSON logs, a free
// port) until ctx is done, and returns the address its "rlsd serving" line
// names and the channel its exit code arrives on.
func serveInProcess(t *testing.T, ctx context.Context, args ...string) (string, <-chan int) {
	t.Helper()
	pr, pw := io.Pipe()
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, args, envFrom(nil), io.Discard, pw)
		pw.Close()
	}()
	addrRE := regexp.MustCompile(`"msg":"rlsd serving".*"addr":"([0-9.:]+)"`)
	sc := bufio.NewScanner(pr)
	var addr string
	for addr == "" && sc.Scan() {
		if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("no serving line; exit %d", <-exited)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }() // keep the daemon's logging from blocking
	return addr, exited
}

// TestServe runs the daemon in process on a free port, finds the bound
// address in its "rlsd serving" log line, waits on health, makes a call, and
// stops it as a signal would.
func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addr, exited := serveInProcess(t, ctx, "--site", "jsoc", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--no-sync", "--log-format", "json")

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "rls.v1.Catalog"}, grpc.WaitForReady(true))
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v, %v", h, err)
	}
	if _, err := rlsv1.NewCatalogClient(conn).Create(ctx, &rlsv1.MappingRequest{Lfn: "1", Pfn: "/a"}); err != nil {
		t.Fatal(err)
	}
	ping, err := rlsv1.NewAdminClient(conn).Ping(ctx, &rlsv1.PingRequest{})
	if err != nil || ping.GetSite() != "jsoc" {
		t.Fatalf("Ping: %v, %v", ping, err)
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Errorf("exit %d after shutdown, want 0", code)
	}
}
