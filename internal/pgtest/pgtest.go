// Package pgtest starts a real, throwaway PostgreSQL server from the
// machine's binaries, for tests and benchmarks. It never mocks anything: the
// server is initdb'd into a fresh temporary directory, listens on a free
// loopback port and a private Unix socket directory, and is stopped and
// removed by Stop.
//
// In a test:
//
//	srv := pgtest.Start(t, pgtest.Options{})
//	conn, err := pgx.Connect(ctx, srv.DSN)
//
// Start skips the test when the machine has no PostgreSQL binaries, except
// when the environment says CI=true: CI installs them, so there their absence
// is a failure. From a program (a benchmark driver), use StartServer and call
// Stop yourself.
//
// PostgreSQL refuses to run as root. When the caller is root, initdb and
// postgres run as the unprivileged user "nobody" (override with
// Options.User), and the temporary directory is handed to that user.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoPostgres reports that no PostgreSQL server binaries were found.
var ErrNoPostgres = errors.New("pgtest: no PostgreSQL server binaries found (looked for /usr/lib/postgresql/*/bin/initdb and $PGTEST_BINDIR); install them with `apt-get install -y postgresql`")

// Options configure a server. The zero value is a durable server (fsync and
// synchronous_commit on, as in production) with PostgreSQL's defaults.
type Options struct {
	// BinDir is the directory holding initdb, postgres and pg_ctl. Empty
	// means $PGTEST_BINDIR, else the newest /usr/lib/postgresql/*/bin.
	BinDir string
	// NoSync turns fsync, synchronous_commit and full_page_writes off: much
	// faster, and not durable. Leave it off when comparing durable writes.
	NoSync bool
	// Settings are extra server settings, passed as `-c name=value`. They
	// win over NoSync.
	Settings map[string]string
	// User is the account the server runs as when the caller is root.
	// Empty means "nobody". Ignored when the caller is not root.
	User string
	// StartTimeout bounds initdb plus start-up. Zero means 60s.
	StartTimeout time.Duration
	// Log, when set, also receives the server's log output.
	Log io.Writer
}

// Server is one running PostgreSQL server. Its fields are read-only. Stop is
// safe to call more than once and from several goroutines.
type Server struct {
	// DSN connects as the superuser "postgres" to database "postgres" over
	// TCP on 127.0.0.1, without TLS and without a password (trust auth).
	DSN string
	// Port is the TCP port on 127.0.0.1 (also the Unix socket's number).
	Port int
	// Dir is the temporary directory holding data/, sock/ and postgres.log.
	Dir string
	// SocketDir holds the server's Unix socket.
	SocketDir string
	// BinDir is where the binaries came from; Version is their major version
	// (the directory name under /usr/lib/postgresql, or "" if unknown).
	BinDir  string
	Version string

	opts    Options
	cred    *syscall.Credential
	logw    io.Writer
	logFile *os.File

	mu       sync.Mutex    // serialises Shutdown, Restart and Stop
	cmd      *exec.Cmd     // the current postgres process; nil while shut down
	exited   chan struct{} // closed when the current postgres process has exited
	waitErr  error         // valid after exited is closed
	release  chan struct{} // lets the goroutine owning the process thread end
	removed  bool          // Stop has removed Dir
	stopOnce sync.Once
	stopErr  error
}

// DSNFor returns a DSN for another database on the same server.
func (s *Server) DSNFor(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// Start starts a server for a test or benchmark and stops it in t.Cleanup.
// It skips the test when no PostgreSQL binaries exist, unless CI=true, where
// it fails the test instead. Any other start-up problem fails the test.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	srv, err := StartServer(opts)
	if errors.Is(err, ErrNoPostgres) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: CI must install PostgreSQL)", err)
		}
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("pgtest: stop: %v", err)
		}
	})
	return srv
}

// FindBinDir returns the directory of the PostgreSQL server binaries that
// StartServer would use for opts.BinDir == "", or ErrNoPostgres.
func FindBinDir() (dir, version string, err error) {
	if d := os.Getenv("PGTEST_BINDIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", "", fmt.Errorf("%w: PGTEST_BINDIR=%s: %v", ErrNoPostgres, d, err)
		}
		return d, "", nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", "", ErrNoPostgres
	}
	// Newest major version first; names are "15", "16", or "9.6" of old.
	sort.Slice(matches, func(i, j int) bool {
		return versionLess(verOf(matches[j]), verOf(matches[i]))
	})
	return filepath.Dir(matches[0]), verOf(matches[0]), nil
}

func verOf(initdb string) string { return filepath.Base(filepath.Dir(filepath.Dir(initdb))) }

func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, errx := strconv.Atoi(as[i])
		y, erry := strconv.Atoi(bs[i])
		if errx != nil || erry != nil {
			if as[i] != bs[i] {
				return as[i] < bs[i]
			}
			continue
		}
		if x != y {
			return x < y
		}
	}
	return len(as) < len(bs)
}

// StartServer initdb's a new cluster in a temporary directory, starts it and
// waits until it accepts connections. The caller must call Stop, which also
// removes the directory. If the calling process dies, the kernel sends the
// server SIGINT (fast shutdown), so no server outlives its owner.
func StartServer(opts Options) (*Server, error) {
	binDir, version := opts.BinDir, ""
	if binDir == "" {
		var err error
		if binDir, version, err = FindBinDir(); err != nil {
			return nil, err
		}
	} else if _, err := os.Stat(filepath.Join(binDir, "initdb")); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoPostgres, err)
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	cred, err := credential(opts.User)
	if err != nil {
		return nil, err
	}
	dir, err := makeTempDir(cred != nil)
	if err != nil {
		return nil, err
	}
	srv := &Server{Dir: dir, SocketDir: filepath.Join(dir, "sock"), BinDir: binDir, Version: version, opts: opts, cred: cred}
	ok := false
	defer func() {
		if !ok {
			if srv.logFile != nil {
				srv.logFile.Close()
			}
			os.RemoveAll(dir)
		}
	}()
	dataDir := filepath.Join(dir, "data")
	for _, d := range []string{dataDir, srv.SocketDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	if cred != nil {
		for _, d := range []string{dir, dataDir, srv.SocketDir} {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, fmt.Errorf("pgtest: hand %s to uid %d: %w", d, cred.Uid, err)
			}
		}
	}
	srv.logFile, err = os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	srv.logw = srv.logFile
	if opts.Log != nil {
		srv.logw = io.MultiWriter(srv.logFile, opts.Log)
	}

	initdb := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"),
		"-D", dataDir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--no-locale")
	initdb.Dir = dir
	initdb.Env = serverEnv()
	initdb.Stdout, initdb.Stderr = srv.logw, srv.logw
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := initdb.Run(); err != nil {
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, tail(srv.logFile.Name()))
	}

	// A free port can be taken between our probe and the server's bind;
	// try a few ports before giving up.
	for attempt := 0; ; attempt++ {
		var port int
		if port, err = freePort(); err != nil {
			return nil, err
		}
		err = srv.launch(ctx, port)
		if err == nil {
			srv.Port = port
			srv.DSN = srv.DSNFor("postgres")
			break
		}
		if attempt == 2 || ctx.Err() != nil || !strings.Contains(tail(srv.logFile.Name()), "in use") {
			return nil, err
		}
	}
	ok = true
	return srv, nil
}

// launch starts postgres on port and waits for it to accept connections. On
// failure the process is gone when launch returns.
func (s *Server) launch(ctx context.Context, port int) error {
	opts, logw := s.opts, s.logw
	dataDir := filepath.Join(s.Dir, "data")
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": s.SocketDir,
		"port":                    strconv.Itoa(port),
		"fsync":                   "on",
		"synchronous_commit":      "on",
		"full_page_writes":        "on",
		"logging_collector":       "off",
	}
	if opts.NoSync {
		settings["fsync"], settings["synchronous_commit"], settings["full_page_writes"] = "off", "off", "off"
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := []string{"-D", dataDir}
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}
	cmd := exec.Command(filepath.Join(s.BinDir, "postgres"), args...)
	cmd.Dir = s.Dir
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: s.cred,
		Setpgid:    true, // a ^C at the terminal goes to us, and we stop the server
		Pdeathsig:  syscall.SIGINT,
	}

	// Pdeathsig fires when the *thread* that forked the child exits, so the
	// fork happens on a locked thread owned by a goroutine that lives until
	// the server has exited.
	exited, release := make(chan struct{}), make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			close(exited)
			return
		}
		started <- nil
		s.waitErr = cmd.Wait()
		close(exited)
		<-release
	}()
	s.exited, s.release = exited, release
	if err := <-started; err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	s.cmd = cmd

	if err := s.waitReady(ctx, port); err != nil {
		s.kill()
		s.cmd = nil
		return fmt.Errorf("pgtest: postgres did not become ready: %v\n%s", err, tail(s.logFile.Name()))
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context, port int) error {
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	var last error
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("postgres exited: %v", s.waitErr)
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(pctx, dsn)
		if err == nil {
			err = conn.Ping(pctx)
			conn.Close(context.Background())
		}
		cancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
		case <-s.exited:
			return fmt.Errorf("postgres exited: %v", s.waitErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// kill stops a server that failed to start, without grace.
func (s *Server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	}
	close(s.release)
}

// Stop shuts the server down with a fast shutdown (SIGINT: roll back open
// transactions, checkpoint, exit), escalating to SIGQUIT and SIGKILL if it
// lingers, then removes its directory. It returns the first error met. Stop
// after Shutdown only removes the directory.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		err := s.halt()
		s.logFile.Close()
		s.removed = true
		s.stopErr = errors.Join(err, os.RemoveAll(s.Dir))
	})
	return s.stopErr
}

// Shutdown stops the server process as Stop does (a fast shutdown: open
// transactions roll back, clients are disconnected), but keeps its data
// directory, port and DSN, so that Restart can bring the same cluster back.
// Tests use it to see how a client lives through a server restart. Calling
// it on a server that is already shut down does nothing.
func (s *Server) Shutdown() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.halt()
}

// Restart starts the server again on the same data directory and port,
// shutting it down first if it is running, and waits until it accepts
// connections. What was committed before survives. It fails if another
// process took the port meanwhile.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed {
		return errors.New("pgtest: restart after Stop")
	}
	if err := s.halt(); err != nil {
		return err
	}
	timeout := s.opts.StartTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.launch(ctx, s.Port)
}

// halt stops the current postgres process, if any. The caller holds s.mu.
func (s *Server) halt() error {
	if s.cmd == nil {
		return nil
	}
	var errs []error
	p := s.cmd.Process
	_ = p.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		errs = append(errs, errors.New("postgres ignored SIGINT for 30s; sent SIGQUIT"))
		_ = p.Signal(syscall.SIGQUIT)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = p.Kill()
			<-s.exited
		}
	}
	close(s.release)
	s.cmd = nil
	if s.waitErr != nil && len(errs) == 0 {
		// A fast shutdown exits 0; anything else is worth a look.
		errs = append(errs, fmt.Errorf("postgres exited: %v\n%s", s.waitErr, tail(s.logFile.Name())))
	}
	return errors.Join(errs...)
}

// credential returns the identity to run the server as, or nil to run it as
// ourselves (when we are not root).
func credential(name string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if name == "" {
		name = "nobody"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, and PostgreSQL refuses root: no user %q to run it as: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil || uid == 0 {
		return nil, fmt.Errorf("pgtest: user %q (uid %s, gid %s) cannot run PostgreSQL", name, u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// makeTempDir makes the server's directory. When the server will run as
// another user, every ancestor must be searchable by it; $TMPDIR may not be
// (e.g. under /root), so fall back to /tmp.
func makeTempDir(otherUser bool) (string, error) {
	base := os.TempDir()
	if otherUser && !searchableByOthers(base) {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "pgtest-")
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	return dir, nil
}

func searchableByOthers(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// serverEnv is a small, predictable environment: no PG* variables from the
// caller leak into the server, and messages are in English.
func serverEnv() []string {
	return []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "LANG=C", "TZ=UTC"}
}

// tail returns the end of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return strings.TrimSpace(string(b))
}
