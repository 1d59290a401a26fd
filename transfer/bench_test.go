package transfer_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/transfer"
)

// benchUnits writes (once per process) the two units of
// scripts/bench-transfer.sh, scaled down: one big file, and many small
// files in nested directories.
var quiet = slog.New(slog.DiscardHandler)

var benchData = map[string]string{}

func benchUnit(b *testing.B, name string, files int, size int) string {
	b.Helper()
	if u, ok := benchData[name]; ok {
		return u
	}
	root := os.Getenv("RLS_BENCH_DIR")
	if root == "" {
		root = os.TempDir()
	}
	root = filepath.Join(root, "rls-bench-transfer")
	u := filepath.Join(root, name)
	if _, err := os.Stat(filepath.Join(u, ".complete")); err != nil {
		os.RemoveAll(u)
		buf := make([]byte, size)
		for i := range files {
			d := filepath.Join(u, fmt.Sprintf("d%02d", i%20))
			must(b, os.MkdirAll(d, 0o755))
			rand.Read(buf)
			must(b, os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d", i)), buf, 0o644))
		}
		must(b, os.WriteFile(filepath.Join(u, ".complete"), nil, 0o644))
	}
	benchData[name] = u
	return u
}

// BenchmarkPull pulls a unit from an rlsd-like gRPC source on loopback
// (fresh: a new Source, which hashes the unit for its manifest; warm: one
// whose digest cache holds it), with fsync, into the same file system. The
// page cache is not dropped, so the source's reads are cached.
// RLS_BENCH_DIR sets where the units are kept (default $TMPDIR).
func BenchmarkPull(b *testing.B) {
	for _, c := range []struct {
		name        string
		files, size int
	}{
		{"big", 1, 256 << 20},
		{"small", 2000, 32 << 10},
	} {
		for _, warm := range []bool{false, true} {
			mode := "fresh"
			if warm {
				mode = "warm"
			}
			b.Run(c.name+"/"+mode, func(b *testing.B) {
				u := benchUnit(b, c.name, c.files, c.size)
				root := filepath.Dir(u)
				var src *transfer.Source
				var addr string
				start := func() func() {
					var err error
					src, err = transfer.NewSource([]string{root}, &transfer.SourceOptions{Logger: quiet})
					must(b, err)
					srv, err := api.NewServer(api.ServerOptions{Logger: quiet})
					must(b, err)
					rlsv1.RegisterTransferServer(srv, api.NewTransferServer(src))
					lis, err := net.Listen("tcp", "127.0.0.1:0")
					must(b, err)
					go func() { _ = srv.Serve(lis) }()
					addr = lis.Addr().String()
					return func() { _ = srv.Shutdown(context.Background()); src.Close() }
				}
				stop := start()
				if warm {
					_, err := src.Manifest(context.Background(), u)
					must(b, err)
				}
				b.SetBytes(int64(c.files * c.size))
				b.ResetTimer()
				for i := range b.N {
					b.StopTimer()
					if !warm && i > 0 {
						stop()
						stop = start()
					}
					dest := filepath.Join(b.TempDir(), "D")
					cl, err := api.DialTransfer(addr, nil)
					must(b, err)
					b.StartTimer()
					_, err = transfer.Pull(context.Background(), u, dest, transfer.PullOptions{Sources: []transfer.Peer{cl}, Logger: quiet})
					must(b, err)
					b.StopTimer()
					cl.Close()
					os.RemoveAll(dest)
					b.StartTimer()
				}
				b.StopTimer()
				stop()
			})
		}
	}
}
