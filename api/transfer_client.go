package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/internal/secure"
	"github.com/solar-archive/rls/transfer"
)

// TransferClient is a remote rls.v1.Transfer service as a transfer.Peer.
// It is safe for concurrent use; its calls share one connection, with
// large HTTP/2 flow-control windows so that a few streams fill a fast link.
type TransferClient struct {
	addr string
	cc   *grpc.ClientConn
	c    rlsv1.TransferClient
}

// DialTransfer creates a client for the Transfer service at addr
// (HOST:PORT) through d (nil: plaintext). It does not connect: the first
// call does, and fails with an error wrapping transfer.ErrUnavailable if
// addr cannot be reached.
func DialTransfer(addr string, d *secure.Dialer) (*TransferClient, error) {
	cc, err := d.Dial(addr,
		// Fixed windows (which turn off BDP estimation): 16 MiB a stream,
		// 64 MiB a connection, enough for 1 MiB chunks at loopback speed.
		grpc.WithInitialWindowSize(16<<20),
		grpc.WithInitialConnWindowSize(64<<20),
		grpc.WithReadBufferSize(1<<20),
		experimental.WithBufferPool(bufferPool),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", transfer.ErrInvalid, addr, err)
	}
	return &TransferClient{addr: addr, cc: cc, c: rlsv1.NewTransferClient(cc)}, nil
}

// Name is the address the client was dialed with.
func (c *TransferClient) Name() string { return c.addr }

// Close closes the connection; calls in flight fail.
func (c *TransferClient) Close() error { return c.cc.Close() }

// Manifest implements transfer.Peer.
func (c *TransferClient) Manifest(ctx context.Context, pfn string) (*transfer.Manifest, error) {
	pm, err := c.c.Manifest(ctx, &rlsv1.ManifestRequest{Pfn: pfn})
	if err != nil {
		return nil, transferError(err)
	}
	return ManifestFromProto(pm)
}

// FastManifest implements transfer.FastManifester: the manifest without
// digests (Manifest with fast set).
func (c *TransferClient) FastManifest(ctx context.Context, pfn string) (*transfer.Manifest, error) {
	pm, err := c.c.Manifest(ctx, &rlsv1.ManifestRequest{Pfn: pfn, Fast: true})
	if err != nil {
		return nil, transferError(err)
	}
	return manifestFromProto(pm, false)
}

// Read implements transfer.Peer, in calls of at most MaxReadRanges ranges.
func (c *TransferClient) Read(ctx context.Context, ranges []transfer.Range, fn func(i int, off int64, p []byte) error) error {
	for base := 0; base < len(ranges); base += MaxReadRanges {
		part := ranges[base:min(base+MaxReadRanges, len(ranges))]
		if err := c.read(ctx, base, part, fn); err != nil {
			return err
		}
	}
	return nil
}

func (c *TransferClient) read(ctx context.Context, base int, ranges []transfer.Range, fn func(int, int64, []byte) error) error {
	req := &rlsv1.ReadRequest{Ranges: make([]*rlsv1.FileRange, len(ranges))}
	for i, r := range ranges {
		fr := &rlsv1.FileRange{Pfn: r.PFN, Path: r.Path, Offset: uint64(r.Offset), Length: uint64(r.Length), Version: r.Version}
		if !r.SHA256.IsZero() {
			fr.Sha256 = r.SHA256[:]
		}
		req.Ranges[i] = fr
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.c.Read(ctx, req, grpc.ForceCodecV2(chunkCodec{}))
	if err != nil {
		return transferError(err)
	}
	var chunk chunkMsg
	for {
		if err := stream.RecvMsg(&chunk); err != nil {
			if errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled && ctx.Err() != nil {
				return ctx.Err()
			}
			if err == io.EOF {
				return nil
			}
			return transferError(err)
		}
		if chunk.rng >= uint64(len(ranges)) {
			return fmt.Errorf("%s: %w: chunk for range %d of %d", c.addr, transfer.ErrCorrupt, chunk.rng, len(ranges))
		}
		if chunk.offset > math.MaxInt64 {
			return fmt.Errorf("%s: %w: chunk at offset %d", c.addr, transfer.ErrCorrupt, chunk.offset)
		}
		if err := fn(base+int(chunk.rng), int64(chunk.offset), chunk.data); err != nil {
			return err
		}
	}
}

// remoteError is a gRPC error from a source as a transfer sentinel.
type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// transferError maps a gRPC error from a Transfer call to the transfer
// package's sentinels (the inverse of transferStatus); the message keeps
// the server's text, prefixed with the sentinel's unless it starts with it.
func transferError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var sentinel error
	switch st.Code() {
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		sentinel = transfer.ErrTimeout
	case codes.Unavailable:
		sentinel = transfer.ErrUnavailable
	case codes.OutOfRange:
		sentinel = transfer.ErrInvalid
	default:
		for _, m := range transferCodes {
			if m.code == st.Code() {
				sentinel = m.err
			}
		}
	}
	if sentinel == nil {
		return err
	}
	msg := st.Message()
	if !strings.HasPrefix(msg, sentinel.Error()+":") {
		msg = sentinel.Error() + ": " + msg
	}
	return &remoteError{sentinel: sentinel, msg: msg}
}

var _ transfer.FastManifester = (*TransferClient)(nil)
