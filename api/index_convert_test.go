package api

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/index"
)

// The soft-state wire: headers and update streams converted to package
// index's types, and IndexSink's updates as an index receives them. What
// the index does with an update is index's (its testdata/index).

func openTestIndex(t testing.TB) *index.Index {
	t.Helper()
	x, err := index.Open(t.TempDir(), &index.Options{Site: "rli", NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func wireHeader(site string, mode rlsv1.UpdateMode, gen, entries uint64) *rlsv1.UpdateHeader {
	return &rlsv1.UpdateHeader{Site: site, Endpoint: site + ":7600", Mode: mode, Generation: gen, Entries: entries,
		Validity: durationpb.New(time.Hour)}
}

func TestHeaderProtoRoundTrip(t *testing.T) {
	for _, h := range []index.Header{
		{Site: "nso", Endpoint: "nso:7600", Mode: index.ModeList, Generation: 9, Validity: time.Hour, Entries: 3,
			Via: []string{"mid"}, Updated: time.Unix(1e9, 5).UTC(), Incarnation: []byte(strings.Repeat("\x01", 16))},
		{Site: "sao", Endpoint: "sao:1", Mode: index.ModeBloom, Generation: 2, Validity: time.Minute,
			Bloom: index.BloomParams{Version: index.BloomVersion, M: 1024, K: 7, Entries: 5}},
		{Site: "kis", Endpoint: "kis:1", Mode: index.ModeDelta, BaseGeneration: 3, Generation: 4, Validity: time.Hour, Entries: 2},
	} {
		got, err := HeaderFromProto(HeaderProto(h))
		if err != nil || !reflect.DeepEqual(got, h) {
			t.Errorf("HeaderFromProto(HeaderProto(%+v)) = %+v, %v", h, got, err)
		}
	}
}

// TestHeaderFromProto checks what only the wire form can get wrong, and
// that the index's own checks follow.
func TestHeaderFromProto(t *testing.T) {
	list := func(mod func(h *rlsv1.UpdateHeader)) *rlsv1.UpdateHeader {
		h := wireHeader("nso", rlsv1.UpdateMode_UPDATE_MODE_LIST, 2, 1)
		mod(h)
		return h
	}
	for _, tc := range []struct {
		name string
		h    *rlsv1.UpdateHeader
		want string
	}{
		{"none", nil, "header: missing"},
		{"no mode", list(func(h *rlsv1.UpdateHeader) { h.Mode = 0 }), "header.mode: UPDATE_MODE_UNSPECIFIED is not list, bloom or delta"},
		{"unknown mode", list(func(h *rlsv1.UpdateHeader) { h.Mode = 7 }), "header.mode: 7 is not list"},
		{"no validity", list(func(h *rlsv1.UpdateHeader) { h.Validity = nil }), "header.validity: missing"},
		{"malformed validity", list(func(h *rlsv1.UpdateHeader) { h.Validity = &durationpb.Duration{Seconds: 1, Nanos: -1} }), "header.validity: "},
		{"malformed updated", list(func(h *rlsv1.UpdateHeader) { h.Updated = &timestamppb.Timestamp{Nanos: -1} }), "header.updated: "},
		{"bloom missing", list(func(h *rlsv1.UpdateHeader) { h.Mode = rlsv1.UpdateMode_UPDATE_MODE_BLOOM; h.Entries = 0 }), "header.bloom: missing"},
		{"bloom in a list", list(func(h *rlsv1.UpdateHeader) { h.Bloom = &rlsv1.BloomHeader{} }), "header.bloom: set in a list update"},
		{"bloom in a delta", list(func(h *rlsv1.UpdateHeader) {
			h.Mode = rlsv1.UpdateMode_UPDATE_MODE_DELTA
			h.Bloom = &rlsv1.BloomHeader{Version: 1, M: 1024, K: 7}
		}), "header.bloom: set in a delta update"},
		{"the index's checks", list(func(h *rlsv1.UpdateHeader) { h.Endpoint = "" }), "header.endpoint: empty"},
	} {
		if _, err := HeaderFromProto(tc.h); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: HeaderFromProto = %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
}

func recvFrom(msgs []*rlsv1.UpdateRequest) func() (*rlsv1.UpdateRequest, error) {
	return func() (*rlsv1.UpdateRequest, error) {
		if len(msgs) == 0 {
			return nil, io.EOF
		}
		m := msgs[0]
		msgs = msgs[1:]
		return m, nil
	}
}

func headerMsg(h *rlsv1.UpdateHeader) *rlsv1.UpdateRequest {
	return &rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Header{Header: h}}
}

func lfnsMsg(names ...string) *rlsv1.UpdateRequest {
	return &rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Lfns{Lfns: &rlsv1.LFNChunk{Lfns: names}}}
}

func wordsMsg(words []uint64) *rlsv1.UpdateRequest {
	b := make([]byte, 0, 8*len(words))
	for _, w := range words {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return &rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Bloom{Bloom: &rlsv1.BloomChunk{Words: b}}}
}

// TestReceiveUpdate sends update streams as they come off the wire into an
// index: good ones apply, and malformed ones are refused with ErrInvalid,
// naming what was wrong, and change nothing.
func TestReceiveUpdate(t *testing.T) {
	x := openTestIndex(t)
	bloomHdr := wireHeader("sao", rlsv1.UpdateMode_UPDATE_MODE_BLOOM, 1, 0)
	bloomHdr.Bloom = &rlsv1.BloomHeader{Version: 1, M: 128, K: 1, Entries: 1}
	deltaHdr := wireHeader("nso", rlsv1.UpdateMode_UPDATE_MODE_DELTA, 2, 2)
	deltaHdr.BaseGeneration = 1
	for _, msgs := range [][]*rlsv1.UpdateRequest{
		{headerMsg(wireHeader("nso", rlsv1.UpdateMode_UPDATE_MODE_LIST, 1, 2)), lfnsMsg("1"), lfnsMsg("2")},
		// Bit 0 and bit 64: a filter of 128 bits in two chunks, little-endian.
		{headerMsg(bloomHdr), wordsMsg([]uint64{1}), wordsMsg([]uint64{1})},
		{headerMsg(deltaHdr), {Body: &rlsv1.UpdateRequest_Delta{Delta: &rlsv1.DeltaChunk{Added: []string{"3"}, Removed: []string{"1"}}}}},
	} {
		if _, err := ReceiveUpdate(x, recvFrom(msgs), nil); err != nil {
			t.Fatal(err)
		}
	}
	res, err := x.Locate([]string{"1", "2", "3"})
	if err != nil || len(res[0]) != 0 || len(res[1]) != 1 || len(res[2]) != 1 || res[2][0].KnownBy != index.ModeDelta {
		t.Fatalf("Locate = %+v, %v", res, err)
	}
	if s := x.Sites(); len(s) != 2 || s[1].Bloom.M != 128 {
		t.Fatalf("Sites = %+v", s)
	}

	good := headerMsg(wireHeader("kis", rlsv1.UpdateMode_UPDATE_MODE_LIST, 1, 1))
	noValidity := wireHeader("kis", rlsv1.UpdateMode_UPDATE_MODE_LIST, 1, 1)
	noValidity.Validity = nil
	for _, tc := range []struct {
		name string
		msgs []*rlsv1.UpdateRequest
		want string
	}{
		{"a header without validity", []*rlsv1.UpdateRequest{headerMsg(noValidity), lfnsMsg("1")}, "invalid: header.validity: missing"},
		{"an empty header", []*rlsv1.UpdateRequest{{Body: &rlsv1.UpdateRequest_Header{}}}, "the first message is not a header"},
		{"a second header, malformed", []*rlsv1.UpdateRequest{good, headerMsg(noValidity)}, "message 1 is a second header"},
		{"no body", []*rlsv1.UpdateRequest{good, {}}, "message 1 has no body"},
		{"a ragged Bloom chunk", []*rlsv1.UpdateRequest{headerMsg(bloomHdr), {Body: &rlsv1.UpdateRequest_Bloom{Bloom: &rlsv1.BloomChunk{Words: []byte{1, 2, 3}}}}},
			"bloom.words: chunk of 3 bytes is not a whole number of 64-bit words"},
	} {
		_, err := ReceiveUpdate(x, recvFrom(tc.msgs), nil)
		if !errors.Is(err, index.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ReceiveUpdate = %v, want ErrInvalid naming %q", tc.name, err, tc.want)
		}
	}
	if n := len(x.Sites()); n != 2 {
		t.Fatalf("%d sites after the refused updates, want 2", n)
	}
}

// FuzzDecodeUpdate feeds an index arbitrary update streams: a sequence of
// length-prefixed, possibly malformed UpdateRequest messages. It must never
// panic, must refuse with ErrInvalid (or the index's refusals of an update
// that decodes) what it refuses, and acknowledge what it accepts at the
// header's generation.
func FuzzDecodeUpdate(f *testing.F) {
	bloomHdr := wireHeader("sao", rlsv1.UpdateMode_UPDATE_MODE_BLOOM, 1, 0)
	bloomHdr.Bloom = &rlsv1.BloomHeader{Version: 1, M: 128, K: 1, Entries: 1}
	deltaHdr := wireHeader("nso", rlsv1.UpdateMode_UPDATE_MODE_DELTA, 2, 2)
	deltaHdr.BaseGeneration = 1
	for _, msgs := range [][]*rlsv1.UpdateRequest{
		{headerMsg(wireHeader("nso", rlsv1.UpdateMode_UPDATE_MODE_LIST, 1, 3)), lfnsMsg("1", "2", "3")},
		{headerMsg(bloomHdr), wordsMsg([]uint64{1, 1})},
		{headerMsg(deltaHdr), {Body: &rlsv1.UpdateRequest_Delta{Delta: &rlsv1.DeltaChunk{Added: []string{"4"}, Removed: []string{"1"}}}}},
	} {
		f.Add(encodeStream(msgs))
	}
	x := openTestIndex(f)
	f.Fuzz(func(t *testing.T, stream []byte) {
		var first *rlsv1.UpdateHeader
		recv := decodeStream(stream)
		ack, err := ReceiveUpdate(x, func() (*rlsv1.UpdateRequest, error) {
			m, err := recv()
			if first == nil && m != nil {
				first = m.GetHeader()
			}
			return m, err
		}, nil)
		if err != nil {
			for _, ok := range []error{index.ErrInvalid, errGarbage, index.ErrOutOfSequence, index.ErrReplay, index.ErrFull} {
				if errors.Is(err, ok) {
					return
				}
			}
			t.Fatalf("error %v is none of the index's refusals nor the stream's own", err)
		}
		if ack.Generation != first.GetGeneration() {
			t.Fatalf("acknowledged generation %d, header says %d", ack.Generation, first.GetGeneration())
		}
	})
}

var errGarbage = errors.New("not a message")

func encodeStream(msgs []*rlsv1.UpdateRequest) []byte {
	var b []byte
	for _, m := range msgs {
		mb, _ := proto.Marshal(m)
		b = binary.AppendUvarint(b, uint64(len(mb)))
		b = append(b, mb...)
	}
	return b
}

func decodeStream(b []byte) func() (*rlsv1.UpdateRequest, error) {
	return func() (*rlsv1.UpdateRequest, error) {
		if len(b) == 0 {
			return nil, io.EOF
		}
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return nil, errGarbage
		}
		m := new(rlsv1.UpdateRequest)
		err := proto.Unmarshal(b[w:w+int(n)], m)
		b = b[w+int(n):]
		if err != nil {
			return nil, errGarbage
		}
		return m, nil
	}
}

// chunkCounter is an Index that counts the chunks of the updates it
// receives and keeps the last one's names; it commits an update only when
// its stream closed whole.
type chunkCounter struct {
	rlsv1.UnimplementedIndexServer
	mu      sync.Mutex
	updates int
	chunks  int
	names   []string
}

func (c *chunkCounter) Update(st rlsv1.Index_UpdateServer) error {
	first, err := st.Recv()
	if err != nil {
		return err
	}
	chunks, names := 0, []string(nil)
	for {
		req, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		chunks++
		names = append(names, req.GetLfns().GetLfns()...)
	}
	c.mu.Lock()
	c.updates, c.chunks, c.names = c.updates+1, chunks, names
	c.mu.Unlock()
	return st.SendAndClose(&rlsv1.UpdateResponse{Generation: first.GetHeader().GetGeneration(), Entries: uint64(len(names))})
}

func TestIndexSinkList(t *testing.T) {
	cc := &chunkCounter{}
	sink, err := NewIndexDialer(nil).Index(serveIndexService(t, cc))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.(io.Closer).Close()
	names := make([]string, 40000)
	for i := range names {
		names[i] = string(rune('a'+i%26)) + strings.Repeat("x", i%7)
	}
	h := index.Header{Site: "nso", Endpoint: "nso:1", Validity: time.Hour, Generation: 9, Entries: uint64(len(names))}
	ack, err := sink.Send(t.Context(), index.ListUpdate(h, slices.Values(names)))
	if err != nil || ack.Generation != 9 || ack.Entries != 40000 {
		t.Fatalf("Send = %+v, %v", ack, err)
	}
	if cc.updates != 1 || cc.chunks != 3 || !slices.Equal(cc.names, names) {
		t.Fatalf("%d updates, the last in %d chunks; want one of 40,000 names in 3 chunks of at most 16,384", cc.updates, cc.chunks)
	}
	// A header that miscounts the names: the stream is aborted, the index
	// commits nothing.
	for _, n := range []uint64{10, 50000} {
		h.Entries = n
		if _, err := sink.Send(t.Context(), index.ListUpdate(h, slices.Values(names))); err == nil {
			t.Errorf("Send of 40,000 names with entries %d succeeded", n)
		}
	}
	if cc.updates != 1 {
		t.Errorf("%d updates committed, want 1", cc.updates)
	}
}

// TestIndexSinkIndex sends every kind of update to a real index over
// gRPC: they apply, a delta on the wrong base is an error wrapping
// index.ErrOutOfSequence that keeps its FAILED_PRECONDITION, a filter that
// does not match its header is refused before it is sent, and an index
// that cannot be reached is UNAVAILABLE.
func TestIndexSinkIndex(t *testing.T) {
	x := openTestIndex(t)
	sink := NewIndexSink(rlsv1.NewIndexClient(newTestEnv(t, func(s *Server) {
		rlsv1.RegisterIndexServer(s, NewIndexServer(x, nil, nil))
	}).conn))
	h := index.Header{Site: "nso", Endpoint: "nso:1", Validity: time.Hour, Generation: 1, Entries: 2}
	if _, err := sink.Send(t.Context(), index.ListUpdate(h, slices.Values([]string{"1", "2"}))); err != nil {
		t.Fatal(err)
	}
	h.BaseGeneration, h.Generation = 1, 2
	if _, err := sink.Send(t.Context(), index.DeltaUpdate(h, []string{"3"}, []string{"1"})); err != nil {
		t.Fatal(err)
	}
	h.BaseGeneration, h.Generation = 1, 3
	_, err := sink.Send(t.Context(), index.DeltaUpdate(h, []string{"4"}, nil))
	if !errors.Is(err, index.ErrOutOfSequence) || status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "holds generation 2") {
		t.Fatalf("delta on the wrong base: %v (code %v), want ErrOutOfSequence, FAILED_PRECONDITION", err, status.Code(err))
	}
	b := index.Header{Site: "sao", Endpoint: "sao:1", Validity: time.Hour, Generation: 1,
		Bloom: index.BloomParams{Version: index.BloomVersion, M: 1024, K: 7, Entries: 1}}
	if _, err := sink.Send(t.Context(), index.BloomUpdate(b, make([]uint64, 15))); err == nil {
		t.Error("a filter of 15 words for 1,024 bits was sent")
	}
	b.Bloom.K = 0
	if _, err := sink.Send(t.Context(), index.BloomUpdate(b, make([]uint64, 16))); err == nil {
		t.Error("a filter with k = 0 was sent")
	}
	b.Bloom.K = 7
	words := make([]uint64, 16)
	words[3] = 1 << 5
	if _, err := sink.Send(t.Context(), index.BloomUpdate(b, words)); err != nil {
		t.Fatal(err)
	}
	if s := x.Sites(); len(s) != 2 || s[0].Generation != 2 || s[1].Bloom.M != 1024 {
		t.Fatalf("Sites = %+v", s)
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	down, err := NewIndexDialer(nil).Index(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer down.(io.Closer).Close()
	h.Entries = 0
	if _, err := down.Send(t.Context(), index.ListUpdate(h, nil)); status.Code(err) != codes.Unavailable {
		t.Errorf("Send to a closed port = %v, want UNAVAILABLE", err)
	}
}
