package api

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/solar-archive/rls/api/rlsv1"
)

// chunkCodec is the codec of the transfer client's Read streams. Requests
// go through the proto codec; each rls.v1.Chunk is decoded into a
// chunkMsg, whose data aliases one buffer the stream reuses. The proto
// codec would copy every chunk twice (the received frames into one
// buffer, then the data field into a new slice) and allocate 1 MiB a
// chunk for the collector to take back: for a 1 GiB pull, 1 GiB of
// garbage and 1 GiB of extra copying on the puller, whose CPU the
// transfer benchmark is bound by.
type chunkCodec struct{}

var protoCodec = encoding.GetCodecV2("proto")

// chunkMsg is a decoded rls.v1.Chunk. data aliases buf, valid until the
// next message is decoded into the chunkMsg.
type chunkMsg struct {
	rng    uint64
	offset uint64
	data   []byte
	buf    []byte
}

func (chunkCodec) Name() string { return "proto" }

func (chunkCodec) Marshal(v any) (mem.BufferSlice, error) { return protoCodec.Marshal(v) }

func (chunkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*chunkMsg)
	if !ok {
		return protoCodec.Unmarshal(data, v)
	}
	n := data.Len()
	if cap(m.buf) < n {
		m.buf = make([]byte, n)
	}
	b := m.buf[:n]
	data.CopyTo(b)
	return m.parse(b)
}

var errChunkWire = errors.New("malformed rls.v1.Chunk")

// parse decodes b, a serialized rls.v1.Chunk (range = 1, offset = 2,
// data = 3), as proto.Unmarshal would: fields in any order, the last
// occurrence winning, unknown fields (and known numbers with another wire
// type) skipped.
func (m *chunkMsg) parse(b []byte) error {
	m.rng, m.offset, m.data = 0, 0, nil
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errChunkWire, protowire.ParseError(n))
		}
		if !num.IsValid() {
			return fmt.Errorf("%w: field number %d", errChunkWire, num)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			m.rng, n = protowire.ConsumeVarint(b)
		case num == 2 && typ == protowire.VarintType:
			m.offset, n = protowire.ConsumeVarint(b)
		case num == 3 && typ == protowire.BytesType:
			m.data, n = protowire.ConsumeBytes(b)
		default: // unknown, or a known number with another wire type, as proto treats it
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %v", errChunkWire, num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	if m.rng > 1<<32-1 {
		return fmt.Errorf("%w: range %d overflows uint32", errChunkWire, m.rng)
	}
	return nil
}

// serverCodec is the server's codec (grpc.ForceServerCodecV2): the proto
// codec, but for rls.v1.Chunk, which it encodes itself into a buffer of
// bufferPool. The proto codec takes its buffers from gRPC's default pool,
// which zeroes each one before the message overwrites it; for the
// transfer source that was a sixth of its CPU on many small files.
//
// A request with invalid UTF-8 in a string field decodes without error,
// but with an INVALID_ARGUMENT naming the field recorded for the server's
// request interceptor to answer with (see badinput.go): gRPC would turn a
// codec error into INTERNAL.
type serverCodec struct{}

func (serverCodec) Name() string { return "proto" }

func (serverCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := protoCodec.Unmarshal(data, v)
	if err != nil {
		return recordBadUTF8(data.Materialize(), v, err)
	}
	return nil
}

func (serverCodec) Marshal(v any) (mem.BufferSlice, error) {
	c, ok := v.(*rlsv1.Chunk)
	if !ok {
		return protoCodec.Marshal(v)
	}
	// As proto.Marshal: fields in number order, zero values left out.
	n := 0
	if c.Range != 0 {
		n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(c.Range))
	}
	if c.Offset != 0 {
		n += protowire.SizeTag(2) + protowire.SizeVarint(c.Offset)
	}
	if len(c.Data) > 0 {
		n += protowire.SizeTag(3) + protowire.SizeBytes(len(c.Data))
	}
	buf := bufferPool.Get(n)
	b := (*buf)[:0]
	if c.Range != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(c.Range))
	}
	if c.Offset != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, c.Offset)
	}
	if len(c.Data) > 0 {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, c.Data)
	}
	*buf = b
	return mem.BufferSlice{mem.NewBuffer(buf, bufferPool)}, nil
}
