package index

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/catalog"
)

// Limits on what one update may carry.
const (
	// MaxEntries bounds the LFNs of one list or delta update.
	MaxEntries = 1 << 30
	// MaxChunkNames bounds the names of one list or delta chunk.
	MaxChunkNames = 100_000
	// MaxVia bounds the length of an update's path through indexes.
	MaxVia = 16
	// MaxValidity bounds how long a site's state may stay valid.
	MaxValidity = 30 * 24 * time.Hour
)

// ModeProto converts m to its wire form.
func ModeProto(m Mode) rlsv1.UpdateMode {
	switch m {
	case ModeList:
		return rlsv1.UpdateMode_UPDATE_MODE_LIST
	case ModeBloom:
		return rlsv1.UpdateMode_UPDATE_MODE_BLOOM
	case ModeDelta:
		return rlsv1.UpdateMode_UPDATE_MODE_DELTA
	}
	return rlsv1.UpdateMode_UPDATE_MODE_UNSPECIFIED
}

func modeFromProto(m rlsv1.UpdateMode) (Mode, bool) {
	switch m {
	case rlsv1.UpdateMode_UPDATE_MODE_LIST:
		return ModeList, true
	case rlsv1.UpdateMode_UPDATE_MODE_BLOOM:
		return ModeBloom, true
	case rlsv1.UpdateMode_UPDATE_MODE_DELTA:
		return ModeDelta, true
	}
	return 0, false
}

// HeaderProto converts h to its wire form.
func HeaderProto(h Header) *rlsv1.UpdateHeader {
	p := &rlsv1.UpdateHeader{
		Site:           h.Site,
		Endpoint:       h.Endpoint,
		Mode:           ModeProto(h.Mode),
		Generation:     h.Generation,
		BaseGeneration: h.BaseGeneration,
		Validity:       durationpb.New(h.Validity),
		Entries:        h.Entries,
		Via:            h.Via,
		Incarnation:    h.Incarnation,
	}
	if h.Mode == ModeBloom {
		p.Bloom = &rlsv1.BloomHeader{Version: h.Bloom.Version, M: h.Bloom.M, K: h.Bloom.K, Entries: h.Bloom.Entries}
	}
	if !h.Updated.IsZero() {
		p.Updated = timestamppb.New(h.Updated)
	}
	return p
}

// HeaderFromProto checks a wire header and converts it. The error names the
// field that is wrong. now stands in for an unset Updated time.
func HeaderFromProto(p *rlsv1.UpdateHeader, now time.Time) (Header, error) {
	if p == nil {
		return Header{}, fmt.Errorf("header: missing (an update starts with its header)")
	}
	h := Header{
		Site:           p.GetSite(),
		Endpoint:       p.GetEndpoint(),
		Generation:     p.GetGeneration(),
		BaseGeneration: p.GetBaseGeneration(),
		Entries:        p.GetEntries(),
		Via:            p.GetVia(),
		Updated:        now,
		Incarnation:    p.GetIncarnation(),
	}
	if n := len(h.Incarnation); n != 0 && n != catalog.IncarnationLen {
		return Header{}, fmt.Errorf("header.incarnation: %d bytes; want %d, or none", n, catalog.IncarnationLen)
	}
	var ok bool
	if h.Mode, ok = modeFromProto(p.GetMode()); !ok {
		return Header{}, fmt.Errorf("header.mode: %v is not list, bloom or delta", p.GetMode())
	}
	if err := checkSite("header.site", h.Site); err != nil {
		return Header{}, err
	}
	if err := checkEndpoint(h.Endpoint); err != nil {
		return Header{}, err
	}
	if len(h.Via) > MaxVia {
		return Header{}, fmt.Errorf("header.via: %d hops, more than %d", len(h.Via), MaxVia)
	}
	for i, v := range h.Via {
		if err := checkSite(fmt.Sprintf("header.via[%d]", i), v); err != nil {
			return Header{}, err
		}
		if j := slices.Index(h.Via[:i], v); j >= 0 {
			return Header{}, fmt.Errorf("header.via[%d]: index %q already at via[%d]: a loop in the index hierarchy", i, v, j)
		}
	}
	v := p.GetValidity()
	if v == nil {
		return Header{}, fmt.Errorf("header.validity: missing")
	}
	if err := v.CheckValid(); err != nil {
		return Header{}, fmt.Errorf("header.validity: %v", err)
	}
	h.Validity = v.AsDuration()
	if h.Validity <= 0 || h.Validity > MaxValidity {
		return Header{}, fmt.Errorf("header.validity: %v is out of range (0, %v]", h.Validity, MaxValidity)
	}
	if u := p.GetUpdated(); u != nil {
		if err := u.CheckValid(); err != nil {
			return Header{}, fmt.Errorf("header.updated: %v", err)
		}
		h.Updated = u.AsTime()
	}
	switch h.Mode {
	case ModeBloom:
		b := p.GetBloom()
		if b == nil {
			return Header{}, fmt.Errorf("header.bloom: missing in a bloom update")
		}
		h.Bloom = BloomParams{Version: b.GetVersion(), M: b.GetM(), K: b.GetK(), Entries: b.GetEntries()}
		if err := h.Bloom.Check(); err != nil {
			return Header{}, fmt.Errorf("header.%v", err)
		}
		if h.Entries != 0 {
			return Header{}, fmt.Errorf("header.entries: %d in a bloom update (the count goes in bloom.entries)", h.Entries)
		}
	case ModeDelta:
		if p.GetBloom() != nil {
			return Header{}, fmt.Errorf("header.bloom: set in a %v update", h.Mode)
		}
		if h.BaseGeneration > h.Generation {
			return Header{}, fmt.Errorf("header.base_generation: %d is after generation %d", h.BaseGeneration, h.Generation)
		}
	default:
		if p.GetBloom() != nil {
			return Header{}, fmt.Errorf("header.bloom: set in a %v update", h.Mode)
		}
	}
	if h.Entries > MaxEntries {
		return Header{}, fmt.Errorf("header.entries: %d is more than %d", h.Entries, MaxEntries)
	}
	return h, nil
}

// checkSite checks a site name: what a catalog accepts as a name, at most
// 255 bytes.
func checkSite(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s: empty site name", field)
	}
	if len(s) > 255 {
		return fmt.Errorf("%s: site name longer than 255 bytes", field)
	}
	if err := catalog.ValidateName("site", s); err != nil {
		return fmt.Errorf("%s: %v", field, err)
	}
	return nil
}

func checkEndpoint(s string) error {
	if s == "" {
		return fmt.Errorf("header.endpoint: empty (the site's gRPC address, host:port)")
	}
	if len(s) > 1024 {
		return fmt.Errorf("header.endpoint: longer than 1024 bytes")
	}
	if err := catalog.ValidateName("endpoint", s); err != nil {
		return fmt.Errorf("header.endpoint: %v", err)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("header.endpoint: %q is not host:port: %v", s, err)
	}
	if host == "" {
		return fmt.Errorf("header.endpoint: %q has no host", s)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("header.endpoint: %q: port %q is not a number in 1..65535", s, port)
	}
	return nil
}
