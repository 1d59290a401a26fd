package api

// Soft-state updates between the wire (rls.v1.UpdateRequest) and package
// index's own types: the index defines them, this file converts.

import (
	"encoding/binary"
	"fmt"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/index"
)

// modeProto converts m to its wire form.
func modeProto(m index.Mode) rlsv1.UpdateMode {
	switch m {
	case index.ModeList:
		return rlsv1.UpdateMode_UPDATE_MODE_LIST
	case index.ModeBloom:
		return rlsv1.UpdateMode_UPDATE_MODE_BLOOM
	case index.ModeDelta:
		return rlsv1.UpdateMode_UPDATE_MODE_DELTA
	}
	return rlsv1.UpdateMode_UPDATE_MODE_UNSPECIFIED
}

func modeFromProto(m rlsv1.UpdateMode) (index.Mode, bool) {
	switch m {
	case rlsv1.UpdateMode_UPDATE_MODE_LIST:
		return index.ModeList, true
	case rlsv1.UpdateMode_UPDATE_MODE_BLOOM:
		return index.ModeBloom, true
	case rlsv1.UpdateMode_UPDATE_MODE_DELTA:
		return index.ModeDelta, true
	}
	return 0, false
}

func bloomProto(p index.BloomParams) *rlsv1.BloomHeader {
	return &rlsv1.BloomHeader{Version: p.Version, M: p.M, K: p.K, Entries: p.Entries}
}

// HeaderProto converts h to its wire form.
func HeaderProto(h index.Header) *rlsv1.UpdateHeader {
	p := &rlsv1.UpdateHeader{
		Site:           h.Site,
		Endpoint:       h.Endpoint,
		Mode:           modeProto(h.Mode),
		Generation:     h.Generation,
		BaseGeneration: h.BaseGeneration,
		Validity:       durationpb.New(h.Validity),
		Entries:        h.Entries,
		Via:            h.Via,
		Incarnation:    h.Incarnation,
	}
	if h.Mode == index.ModeBloom {
		p.Bloom = bloomProto(h.Bloom)
	}
	if !h.Updated.IsZero() {
		p.Updated = timestamppb.New(h.Updated)
	}
	return p
}

// HeaderFromProto converts a wire header and checks it (index.Header.Check
// after what only the wire form can get wrong: a missing or malformed
// field). The error names the field that is wrong. An unset updated time
// stays zero (the index reads it as the time of receipt).
func HeaderFromProto(p *rlsv1.UpdateHeader) (index.Header, error) {
	if p == nil {
		return index.Header{}, fmt.Errorf("header: missing (an update starts with its header)")
	}
	h := index.Header{
		Site:           p.GetSite(),
		Endpoint:       p.GetEndpoint(),
		Generation:     p.GetGeneration(),
		BaseGeneration: p.GetBaseGeneration(),
		Entries:        p.GetEntries(),
		Via:            p.GetVia(),
		Incarnation:    p.GetIncarnation(),
	}
	var ok bool
	if h.Mode, ok = modeFromProto(p.GetMode()); !ok {
		return index.Header{}, fmt.Errorf("header.mode: %v is not list, bloom or delta", p.GetMode())
	}
	v := p.GetValidity()
	if v == nil {
		return index.Header{}, fmt.Errorf("header.validity: missing")
	}
	if err := v.CheckValid(); err != nil {
		return index.Header{}, fmt.Errorf("header.validity: %v", err)
	}
	h.Validity = v.AsDuration()
	if u := p.GetUpdated(); u != nil {
		if err := u.CheckValid(); err != nil {
			return index.Header{}, fmt.Errorf("header.updated: %v", err)
		}
		h.Updated = u.AsTime()
	}
	switch b := p.GetBloom(); {
	case h.Mode == index.ModeBloom && b == nil:
		return index.Header{}, fmt.Errorf("header.bloom: missing in a bloom update")
	case h.Mode == index.ModeBloom:
		h.Bloom = index.BloomParams{Version: b.GetVersion(), M: b.GetM(), K: b.GetK(), Entries: b.GetEntries()}
	case b != nil:
		return index.Header{}, fmt.Errorf("header.bloom: set in a %v update", h.Mode)
	}
	if err := h.Check(); err != nil {
		return index.Header{}, err
	}
	return h, nil
}

// updateReader reads an Update stream's messages as index.Messages. A
// header that does not convert is an error wrapping index.ErrInvalid; so
// is a Bloom chunk that is not a whole number of words. Not safe for
// concurrent use.
type updateReader struct {
	recv  func() (*rlsv1.UpdateRequest, error)
	n     int      // messages read
	words []uint64 // reused for each Bloom chunk (Receive copies it)
}

func (r *updateReader) next() (index.Message, error) {
	req, err := r.recv()
	if err != nil {
		return index.Message{}, err
	}
	r.n++
	switch b := req.GetBody().(type) {
	case *rlsv1.UpdateRequest_Header:
		if r.n > 1 {
			return index.Message{Part: index.PartHeader}, nil // the index refuses a second header
		}
		if b.Header == nil {
			return index.Message{}, nil
		}
		h, err := HeaderFromProto(b.Header)
		if err != nil {
			return index.Message{}, fmt.Errorf("%w: %v", index.ErrInvalid, err)
		}
		return index.Message{Part: index.PartHeader, Header: h}, nil
	case *rlsv1.UpdateRequest_Lfns:
		return index.Message{Part: index.PartLFNs, LFNs: b.Lfns.GetLfns()}, nil
	case *rlsv1.UpdateRequest_Bloom:
		w := b.Bloom.GetWords()
		if len(w)%8 != 0 {
			return index.Message{}, fmt.Errorf("%w: bloom.words: chunk of %d bytes is not a whole number of 64-bit words", index.ErrInvalid, len(w))
		}
		r.words = r.words[:0]
		for i := 0; i < len(w); i += 8 {
			r.words = append(r.words, binary.LittleEndian.Uint64(w[i:]))
		}
		return index.Message{Part: index.PartBloom, Words: r.words}, nil
	case *rlsv1.UpdateRequest_Delta:
		return index.Message{Part: index.PartDelta, Added: b.Delta.GetAdded(), Removed: b.Delta.GetRemoved()}, nil
	}
	return index.Message{}, nil // no body: the index refuses it
}

// ReceiveUpdate applies the update that recv (an Update stream's Recv)
// reads to x, as ReceiveChecked does (allow may be nil).
func ReceiveUpdate(x *index.Index, recv func() (*rlsv1.UpdateRequest, error), allow func(index.Header) error) (index.Ack, error) {
	r := &updateReader{recv: recv}
	return x.ReceiveChecked(r.next, allow)
}
