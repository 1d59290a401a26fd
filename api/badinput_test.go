package api

import (
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/solar-archive/rls/api/rlsv1"
)

// rawCodec sends a request's bytes as they are (so that a test can send
// what the proto codec refuses to encode) and drops the reply's.
type rawCodec struct{}

type rawMsg []byte

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*rawMsg))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*rawMsg) = data.Materialize()
	return nil
}

// appendStr appends string (or message) field num holding s.
func appendStr(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// TestInvalidUTF8: a string field that is not UTF-8 is INVALID_ARGUMENT
// naming the field (it was INTERNAL, unlogged), in unary and streaming
// calls alike, and the refusal is logged.
func TestInvalidUTF8(t *testing.T) {
	// The Transfer service never reaches its (nil) source here.
	e := newTestEnv(t, func(s *Server) { rlsv1.RegisterTransferServer(s, NewTransferServer(nil)) })
	mapping := func(lfn, pfn string) string {
		return string(appendStr(appendStr(nil, 1, lfn), 2, pfn))
	}
	// BulkWriteRequest{op = 1, mappings = 2}
	bulk := protowire.AppendTag(nil, 1, protowire.VarintType)
	bulk = protowire.AppendVarint(bulk, uint64(rlsv1.WriteOp_WRITE_OP_CREATE))
	bulk = appendStr(bulk, 2, mapping("1", "/SUM1/D1"))
	bulk = appendStr(bulk, 2, mapping("2\xff", "/SUM1/D2"))
	for _, c := range []struct {
		method string
		req    []byte
		field  string
	}{
		{"/rls.v1.Catalog/Create", []byte(mapping("1", "/SUM\xc0/D1")), "pfn: not valid UTF-8"},
		{"/rls.v1.Catalog/BulkWrite", bulk, "mappings[1].lfn: not valid UTF-8"},
	} {
		req, resp := rawMsg(c.req), rawMsg(nil)
		err := e.conn.Invoke(ctxT(t), c.method, &req, &resp, grpc.ForceCodecV2(rawCodec{}))
		wantCode(t, c.method, err, codes.InvalidArgument, c.field)
	}
	// A server-streaming call: ReadRequest{ranges = 1 {pfn = 1}}.
	read := rawMsg(appendStr(nil, 1, string(appendStr(nil, 1, "/SUM1/\xffD1"))))
	st, err := e.conn.NewStream(ctxT(t), &grpc.StreamDesc{ServerStreams: true}, "/rls.v1.Transfer/Read", grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SendMsg(&read); err != nil {
		t.Fatal(err)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var chunk rawMsg
	wantCode(t, "Read", st.RecvMsg(&chunk), codes.InvalidArgument, "ranges[0].pfn: not valid UTF-8")

	if logs := e.logs.String(); !strings.Contains(logs, "refused an undecodable request") || !strings.Contains(logs, "mappings[1].lfn") {
		t.Errorf("the refusals were not logged:\n%s", logs)
	}
	// Nothing was written.
	_, err = e.catalog.QueryLFN(ctxT(t), &rlsv1.NameRequest{Name: "1"})
	wantCode(t, "QueryLFN 1 after the refused calls", err, codes.NotFound)
}
