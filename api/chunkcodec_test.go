package api

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/solar-archive/rls/api/rlsv1"
)

// split cuts b into a BufferSlice of pieces of at most n bytes, as frames
// arrive.
func split(b []byte, n int) mem.BufferSlice {
	var s mem.BufferSlice
	for len(b) > 0 {
		k := min(n, len(b))
		piece := bytes.Clone(b[:k])
		s = append(s, mem.SliceBuffer(piece))
		b = b[k:]
	}
	return s
}

func TestChunkCodec(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 70000) // over 1 MiB, many frames
	full, err := proto.Marshal(&rlsv1.Chunk{Range: 7, Offset: 1 << 40, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	var m chunkMsg
	if err := (chunkCodec{}).Unmarshal(split(full, 16<<10), &m); err != nil {
		t.Fatal(err)
	}
	if m.rng != 7 || m.offset != 1<<40 || !bytes.Equal(m.data, data) {
		t.Errorf("decoded range %d offset %d, %d bytes; want 7, 2^40, %d bytes", m.rng, m.offset, len(m.data), len(data))
	}
	// The buffer is reused: a smaller chunk next does not allocate.
	buf := &m.buf[0]
	small, _ := proto.Marshal(&rlsv1.Chunk{Range: 1, Data: []byte("x")})
	if err := (chunkCodec{}).Unmarshal(split(small, 3), &m); err != nil {
		t.Fatal(err)
	}
	if m.rng != 1 || m.offset != 0 || string(m.data) != "x" || &m.buf[0] != buf {
		t.Errorf("second chunk: range %d offset %d data %q, buffer reused %v", m.rng, m.offset, m.data, &m.buf[0] == buf)
	}

	// Fields out of order, repeated (the last wins) and unknown ones.
	var b []byte
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte("first"))
	b = protowire.AppendTag(b, 9, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 99)
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, 5)
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte("last"))
	b = protowire.AppendTag(b, 1, protowire.Fixed32Type) // another wire type: unknown, as for proto
	b = protowire.AppendFixed32(b, 4)
	if err := m.parse(b); err != nil || m.offset != 5 || string(m.data) != "last" || m.rng != 0 {
		t.Errorf("parse: %v, range %d offset %d data %q", err, m.rng, m.offset, m.data)
	}

	// Other messages go through the proto codec.
	req := &rlsv1.ReadRequest{Ranges: []*rlsv1.FileRange{{Pfn: "/a", Path: "b", Length: 3}}}
	out, err := (chunkCodec{}).Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var back rlsv1.ReadRequest
	if err := (chunkCodec{}).Unmarshal(out, &back); err != nil || !proto.Equal(req, &back) {
		t.Errorf("ReadRequest round trip: %v, %v", err, &back)
	}

	for name, bad := range map[string][]byte{
		"truncated data":   full[:len(full)-1],
		"truncated varint": {0x10, 0x80},
		"range overflows":  protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1<<33),
	} {
		if err := m.parse(bad); !errors.Is(err, errChunkWire) {
			t.Errorf("%s: %v, want errChunkWire", name, err)
		}
	}
}

// TestServerCodec: Chunks are encoded as proto.Marshal encodes them, and
// other messages go through the proto codec.
func TestServerCodec(t *testing.T) {
	for _, c := range []*rlsv1.Chunk{
		{}, {Range: 1}, {Offset: 1 << 50}, {Data: []byte("x")},
		{Range: 1<<32 - 1, Offset: 12345, Data: bytes.Repeat([]byte{7}, 1<<20)},
	} {
		want, err := proto.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := (serverCodec{}).Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if b := got.Materialize(); !bytes.Equal(b, want) {
			t.Errorf("Chunk{%d, %d, %d bytes}: %d bytes, differ from proto's %d", c.Range, c.Offset, len(c.Data), len(b), len(want))
		}
		got.Free()
	}
	req := &rlsv1.ReadRequest{Ranges: []*rlsv1.FileRange{{Pfn: "/a", Path: "b", Length: 3}}}
	out, err := (serverCodec{}).Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var back rlsv1.ReadRequest
	if err := (serverCodec{}).Unmarshal(out, &back); err != nil || !proto.Equal(req, &back) {
		t.Errorf("ReadRequest round trip: %v, %v", err, &back)
	}
}

// FuzzChunkParse: whatever proto.Unmarshal accepts as a Chunk, parse
// decodes to the same fields (a range past uint32, which proto truncates,
// parse refuses); whatever parse accepts, proto accepts too.
func FuzzChunkParse(f *testing.F) {
	seed, _ := proto.Marshal(&rlsv1.Chunk{Range: 3, Offset: 77, Data: []byte("hello")})
	f.Add(seed)
	f.Add([]byte{})
	f.Add([]byte{0x1a, 0x05, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var want rlsv1.Chunk
		perr := proto.Unmarshal(b, &want)
		var m chunkMsg
		err := m.parse(bytes.Clone(b))
		if perr != nil {
			if err == nil {
				t.Fatalf("parse accepted what proto refuses (%v): %x", perr, b)
			}
			return
		}
		if err != nil {
			if errors.Is(err, errChunkWire) && m.rng > 1<<32-1 {
				return
			}
			t.Fatalf("parse refused what proto accepts: %v: %x", err, b)
		}
		if uint32(m.rng) != want.GetRange() || m.offset != want.GetOffset() || !bytes.Equal(m.data, want.GetData()) {
			t.Fatalf("parse: range %d offset %d data %x; proto: %d %d %x", m.rng, m.offset, m.data, want.GetRange(), want.GetOffset(), want.GetData())
		}
	})
}
