// Package rlsdtest runs real rlsd processes for integration tests: it builds
// the binaries once per test process, starts rlsd on a loopback port of the
// kernel's choosing, finds the bound address in rlsd's log, and waits on the
// gRPC health service (never on a sleep).
package rlsdtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/solar-archive/rls/internal/secure"
)

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]string{}
)

// Build builds the command package pkg (such as
// "github.com/solar-archive/rls/cmd/rlsd") once per test process and returns
// the binary's path. It skips the test if there is no go command.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[pkg]; ok {
		return bin
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build " + pkg)
	}
	if buildDir == "" {
		// Not t.TempDir: the binaries outlive the test that built them.
		if buildDir, err = os.MkdirTemp("", "rlsdtest-bin"); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(buildDir, filepath.Base(pkg))
	cmd := exec.Command(gobin, "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	built[pkg] = out
	return out
}

// Proc is a running rlsd.
type Proc struct {
	Addr string // the gRPC address it serves on
	// HTTPAddr is the address of its HTTP listener (--http-listen), ""
	// without one.
	HTTPAddr string
	cmd      *exec.Cmd
	exited   chan struct{}
	mu       sync.Mutex
	log      bytes.Buffer
	logged   chan struct{} // closed and replaced at each log line (guarded by mu)
}

// addrRE finds the bound address in the "rlsd serving" line, in text
// (addr=127.0.0.1:PORT) or JSON ("addr":"127.0.0.1:PORT") form.
var addrRE = regexp.MustCompile(`rlsd serving.*?(?:^|[\s{,])"?addr"?[=:]"?([0-9.]+:[0-9]+|\[[0-9a-f:]+\]:[0-9]+)`)

// httpAddrRE finds the HTTP listener's address in the same line.
var httpAddrRE = regexp.MustCompile(`rlsd serving.*?(?:^|[\s{,])"?http_addr"?[=:]"?([0-9.]+:[0-9]+|\[[0-9a-f:]+\]:[0-9]+)`)

// Start runs rlsd with args (which should include --listen 127.0.0.1:0 or
// an explicit loopback address) until the test ends, and returns once the
// health service reports service (such as "rls.v1.Catalog") SERVING.
func Start(t testing.TB, rlsd, service string, args ...string) *Proc {
	t.Helper()
	return start(t, exec.Command(rlsd, args...), service, nil)
}

// StartDialer is Start for an rlsd that serves TLS: d (with a client
// certificate the rlsd accepts) dials its health service.
func StartDialer(t testing.TB, rlsd, service string, d *secure.Dialer, args ...string) *Proc {
	t.Helper()
	return start(t, exec.Command(rlsd, args...), service, d)
}

// start runs cmd (an rlsd, possibly behind a wrapper that execs it) as
// Start does; d dials the health check (nil: plaintext), with opts added.
func start(t testing.TB, cmd *exec.Cmd, service string, d *secure.Dialer, opts ...grpc.DialOption) *Proc {
	t.Helper()
	p := &Proc{cmd: cmd, exited: make(chan struct{}), logged: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = p.cmd.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill() })
	addrc := make(chan [2]string, 1)
	go func() {
		defer close(p.exited)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			p.mu.Lock()
			if p.log.Len() < 1<<20 {
				p.log.Write(sc.Bytes())
				p.log.WriteByte('\n')
			}
			close(p.logged)
			p.logged = make(chan struct{})
			p.mu.Unlock()
			if m := addrRE.FindSubmatch(sc.Bytes()); !found && m != nil {
				found = true
				var httpAddr string
				if h := httpAddrRE.FindSubmatch(sc.Bytes()); h != nil {
					httpAddr = string(h[1])
				}
				addrc <- [2]string{string(m[1]), httpAddr}
			}
		}
		_ = p.cmd.Wait()
	}()
	select {
	case a := <-addrc:
		p.Addr, p.HTTPAddr = a[0], a[1]
	case <-p.exited:
		t.Fatalf("rlsd exited without serving:\n%s", p.Log())
	case <-time.After(30 * time.Second):
		t.Fatalf("rlsd did not report its address in 30s:\n%s", p.Log())
	}
	if err := waitServing(d, p.Addr, service, 30*time.Second, opts...); err != nil {
		t.Fatalf("rlsd at %s: %v\n%s", p.Addr, err, p.Log())
	}
	return p
}

// WaitServing waits until the health service at addr reports service
// SERVING, or the timeout passes. opts are added to the connection's (a
// dialer into a network namespace, say).
func WaitServing(addr, service string, timeout time.Duration, opts ...grpc.DialOption) error {
	return waitServing(nil, addr, service, timeout, opts...)
}

func waitServing(d *secure.Dialer, addr, service string, timeout time.Duration, opts ...grpc.DialOption) error {
	cc, err := d.Dial(addr, opts...)
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	w, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{Service: service},
		grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	for {
		r, err := w.Recv()
		if err != nil {
			return err
		}
		if r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
	}
}

// Pid is the process id of the rlsd.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Log returns what rlsd has logged so far (its first MiB).
func (p *Proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// WaitLog waits until the log from byte offset from on (0: from the start;
// LogLen before an action: only what it caused) has a line matching re, and
// returns that line. It fails the test if the process exits or timeout
// passes first.
func (p *Proc) WaitLog(t testing.TB, from int, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	line, err := p.findLog(from, re, timeout)
	switch {
	case errors.Is(err, errExited):
		t.Fatalf("rlsd exited before logging %v:\n%s", re, p.Log())
	case err != nil:
		t.Fatalf("rlsd did not log %v in %v:\n%s", re, timeout, p.Log())
	}
	return line
}

// FindLog is WaitLog for a line that may not come (a fault test waiting
// for a moment to kill at): it returns the line and true, or "" and false
// once the process has exited or timeout has passed.
func (p *Proc) FindLog(from int, re *regexp.Regexp, timeout time.Duration) (string, bool) {
	line, err := p.findLog(from, re, timeout)
	return line, err == nil
}

var errExited = errors.New("exited")

func (p *Proc) findLog(from int, re *regexp.Regexp, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	exited := false
	for {
		p.mu.Lock()
		b := p.log.Bytes()[min(from, p.log.Len()):]
		next := p.logged
		p.mu.Unlock()
		for line := range bytes.Lines(b) {
			if re.Match(line) {
				return string(line), nil
			}
		}
		if exited {
			return "", errExited
		}
		select {
		case <-next:
		case <-p.exited:
			exited = true // look at the last lines once more
		case <-deadline:
			return "", context.DeadlineExceeded
		}
	}
}

// LogLen is the length of the log so far, an offset for WaitLog.
func (p *Proc) LogLen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Len()
}

// Kill sends SIGKILL (kill -9) and waits for the process to go.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// Stop sends SIGTERM and waits up to timeout for a clean exit, returning
// the exit code (-1 if it had to be killed).
func (p *Proc) Stop(timeout time.Duration) int {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		p.Kill()
		return -1
	}
}

// Exited is closed when the process has exited (on its own or killed).
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// ExitCode is the process's exit status once Exited is closed (-1 if it was
// killed by a signal).
func (p *Proc) ExitCode() int {
	<-p.exited
	return p.cmd.ProcessState.ExitCode()
}
