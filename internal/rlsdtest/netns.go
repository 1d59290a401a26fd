package rlsdtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Netns is a network namespace made for a test (ip netns add), with only
// its loopback up. Whatever links a test adds stay inside the namespaces it
// made: nothing is routed to the host's own namespace or beyond.
type Netns struct {
	Name string
}

// netnsPrefix names the namespaces of this package: netnsPrefix<pid>-<n>,
// so that ones left by a test binary that died without its cleanups (a
// timeout) can be told apart and removed.
const netnsPrefix = "rlsdtest-"

var netnsSeq atomic.Int64

// NewNetns makes a network namespace that is deleted when the test ends
// (also when it fails). It skips the test, saying why, where namespaces
// cannot be made (not root, no ip command, no CAP_SYS_ADMIN).
func NewNetns(t testing.TB) *Netns {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command (iproute2): network-namespace tests need it")
	}
	if os.Geteuid() != 0 {
		t.Skip("network-namespace tests need root (ip netns add)")
	}
	removeStaleNetns()
	n := &Netns{Name: fmt.Sprintf("%s%d-%d", netnsPrefix, os.Getpid(), netnsSeq.Add(1))}
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add is not permitted here (%v: %s): skipping the network-namespace test", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", n.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", n.Name, err, out)
		}
	})
	n.IP(t, "link", "set", "lo", "up")
	return n
}

// removeStaleNetns deletes the namespaces of this package whose test
// process is gone.
func removeStaleNetns() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, netnsPrefix)
		if !ok {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if n, err := strconv.Atoi(pid); err != nil || n == os.Getpid() {
			continue
		} else if _, err := os.Stat("/proc/" + pid); err == nil {
			continue // its test is still running
		}
		_ = exec.Command("ip", "netns", "delete", name).Run()
	}
}

// IP runs `ip -n NAME args...` (ip inside the namespace) and fails the test
// if it fails.
func (n *Netns) IP(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"-n", n.Name}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", n.Name, strings.Join(args, " "), err, out)
	}
}

// Veth joins namespaces a and b with a veth pair: devA in a with address
// addrA, devB in b with addrB (CIDR, such as 10.203.0.1/30), both up. The
// pair is made inside a and b; the host's namespace never holds it.
func Veth(t testing.TB, a *Netns, devA, addrA string, b *Netns, devB, addrB string) {
	t.Helper()
	a.IP(t, "link", "add", devA, "type", "veth", "peer", "name", devB, "netns", b.Name)
	a.IP(t, "addr", "add", addrA, "dev", devA)
	b.IP(t, "addr", "add", addrB, "dev", devB)
	a.IP(t, "link", "set", devA, "up")
	b.IP(t, "link", "set", devB, "up")
}

// Command is name run inside the namespace (ip netns exec, which execs
// it: the process is name itself).
func (n *Netns) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Start runs rlsd inside the namespace as the package-level Start does
// (args should include --listen on an address of the namespace, port 0),
// and waits on its health service from inside the namespace.
func (n *Netns) Start(t testing.TB, rlsd, service string, args ...string) *Proc {
	t.Helper()
	return start(t, n.Command(rlsd, args...), service, nil, n.DialOption())
}

// DialOption makes a gRPC connection dial from inside the namespace.
func (n *Netns) DialOption() grpc.DialOption {
	return grpc.WithContextDialer(n.Dial)
}

// Client is a gRPC client connection to addr inside the namespace, closed
// when the test ends.
func (n *Netns) Client(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), n.DialOption())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// Dial opens a TCP connection to addr (a literal host:port) from inside
// the namespace: the socket is made on an OS thread switched into the
// namespace, and keeps that namespace after the thread switches back.
func (n *Netns) Dial(ctx context.Context, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := n.dialLocked(ctx, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func (n *Netns) dialLocked(ctx context.Context, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer home.Close()
	ns, err := os.Open(filepath.Join("/run/netns", n.Name))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("entering network namespace %s: %w", n.Name, err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if serr := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); serr != nil {
		// The thread stays locked and in the wrong namespace: the runtime
		// ends it with this goroutine rather than reuse it.
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("leaving network namespace %s: %w", n.Name, serr)
	}
	runtime.UnlockOSThread()
	return c, err
}
