package api

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
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
