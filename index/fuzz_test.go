package index

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/solar-archive/rls/api/rlsv1"
)

// FuzzDecodeUpdate feeds the update decoder arbitrary streams: a sequence
// of length-prefixed, possibly malformed UpdateRequest messages. It must
// never panic, must refuse with ErrInvalid what it refuses, and what it
// accepts must be consistent with its header.
func FuzzDecodeUpdate(f *testing.F) {
	fl, fp := newFilter(0.01, "1", "2")
	for _, msgs := range [][]*rlsv1.UpdateRequest{
		listMsgs("nso", 3, "1", "2", "3"),
		bloomMsgs("sao", 1, fl, fp),
		deltaMsgs("nso", 1, 2, []string{"4"}, []string{"1"}),
	} {
		f.Add(encodeStream(msgs))
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		u, err := decodeUpdate(decodeStream(stream), time.Unix(1e9, 0), DefaultMaxBloomBits)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, errGarbage) {
				t.Fatalf("error %v is neither ErrInvalid nor the stream's own", err)
			}
			return
		}
		h := u.h
		switch h.Mode {
		case ModeList:
			if uint64(len(u.list.ends)) > h.Entries {
				t.Fatalf("list of %d names, header says %d", len(u.list.ends), h.Entries)
			}
			for i := range u.list.len() {
				if !u.list.has(u.list.name(i)) {
					t.Fatalf("name %d not found in its own set", i)
				}
			}
		case ModeBloom:
			if uint64(len(u.words)) != h.Bloom.Words() {
				t.Fatalf("%d words for m = %d", len(u.words), h.Bloom.M)
			}
		case ModeDelta:
			if uint64(len(u.added)+len(u.removed)) != h.Entries {
				t.Fatalf("delta of %d names, header says %d", len(u.added)+len(u.removed), h.Entries)
			}
		default:
			t.Fatalf("accepted mode %v", h.Mode)
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
