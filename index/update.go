// Package index is the replica location index (RLI) of rls: it holds, per
// site, the soft state that site's local replica catalog (or a lower index)
// last sent it, and answers which sites hold an LFN. It also holds the
// sending side, which an LRC uses to send its state and an index uses to
// forward what it holds to a parent.
//
// Soft state comes in three modes (see DESIGN.md, "Soft state"): a full list
// of LFNs, a Bloom filter of them, or the changes since the last update. A
// site's state expires unless refreshed in time. An index never answers for
// sites whose state expired, and it keeps a snapshot of what it holds in
// Pebble, so that after a restart it answers at once, with the original
// expiry times. The snapshot is in the package's own versioned format
// (snapshot.go); older formats are migrated on Open.
//
// The package knows no wire format. Updates come in as Messages (Receive)
// and go out as Updates through a Sink; the sender reads its catalog
// through a Feed, and the verifier asks sites' catalogs through a
// SiteCatalog; a Dialer makes Sinks and SiteCatalogs (seams.go). Package
// api converts to and from rls.v1 and implements them over gRPC.
package index

import (
	"fmt"
	"iter"
	"math"
	"math/bits"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/solar-archive/rls/catalog"
)

// Mode is how a site's state travels, and so how the index knows an LFN.
type Mode uint8

const (
	ModeList  Mode = iota + 1 // the full list of LFNs
	ModeBloom                 // a Bloom filter of the LFNs
	ModeDelta                 // LFNs added and removed since the last update
)

func (m Mode) String() string {
	switch m {
	case ModeList:
		return "list"
	case ModeBloom:
		return "bloom"
	case ModeDelta:
		return "delta"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode parses "list", "bloom" or "delta".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "list":
		return ModeList, nil
	case "bloom":
		return ModeBloom, nil
	case "delta":
		return ModeDelta, nil
	}
	return 0, fmt.Errorf("unknown update mode %q (want list, bloom or delta)", s)
}

// BloomVersion is the only filter layout and hashing scheme this package
// reads and writes: the scheme of github.com/bits-and-blooms/bloom/v3
// (128-bit murmur3 of the name; location i = h[i%2] + i*h[2+(((i+(i%2))%4)/2)]
// modulo m), bit b in word b/64 at bit b%64.
const BloomVersion = 1

// Limits on Bloom filter geometry that an index accepts.
const (
	MinBloomBits = 64
	MaxBloomBits = 1 << 34 // 2 GiB of filter
	MaxBloomK    = 32
)

// BloomParams describe a Bloom filter.
type BloomParams struct {
	Version uint32
	M       uint64 // bits
	K       uint32 // hash locations per name
	Entries uint64 // names added
}

// Check reports what is wrong with p, naming the field, or nil.
func (p BloomParams) Check() error {
	switch {
	case p.Version != BloomVersion:
		return fmt.Errorf("bloom.version %d is not supported (this index reads version %d)", p.Version, BloomVersion)
	case p.M < MinBloomBits || p.M > MaxBloomBits:
		return fmt.Errorf("bloom.m %d is out of range [%d, %d]", p.M, MinBloomBits, uint64(MaxBloomBits))
	case p.K < 1 || p.K > MaxBloomK:
		return fmt.Errorf("bloom.k %d is out of range [1, %d]", p.K, MaxBloomK)
	}
	return nil
}

// Words returns the number of 64-bit words that hold the filter's bits.
func (p BloomParams) Words() uint64 { return (p.M + 63) / 64 }

// DefaultFalsePositiveRate is the Bloom filters' target rate unless
// configured otherwise.
const DefaultFalsePositiveRate = 0.01

// BloomGeometry returns the filter geometry for n names at false-positive
// rate fp (0 < fp < 1). k follows from the rate alone (k = ceil(log2(1/fp)))
// and m is the optimal n·k/ln 2 rounded up to a power of two, at least 1,024.
// Filters of sites of similar size therefore share a geometry, which lets an
// index store them bit-sliced together, and the rate is never worse than fp.
func BloomGeometry(n uint64, fp float64) (m uint64, k uint32) {
	if !(fp > 0 && fp < 1) {
		fp = DefaultFalsePositiveRate
	}
	k = uint32(math.Ceil(math.Log2(1 / fp)))
	k = min(max(k, 1), MaxBloomK)
	opt := math.Ceil(float64(n) * float64(k) / math.Ln2)
	m = 1 << 10
	if opt > float64(m) {
		if opt >= MaxBloomBits {
			return MaxBloomBits, k
		}
		m = 1 << bits.Len64(uint64(opt)-1)
	}
	return m, k
}

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

// Header describes one soft-state update.
type Header struct {
	Site     string // the leaf site whose catalog the state describes
	Endpoint string // that site's gRPC endpoint, host:port
	Mode     Mode
	// Generation is the site's catalog change-feed sequence number that the
	// state reflects; a delta applies on top of BaseGeneration.
	Generation     uint64
	BaseGeneration uint64
	Validity       time.Duration
	// Entries counts the LFNs a list carries, or the added plus removed
	// LFNs a delta carries.
	Entries uint64
	Bloom   BloomParams // bloom mode only
	// Via lists the indexes the update passed through, nearest last.
	Via []string
	// Updated is when the site produced the state.
	Updated time.Time
	// Incarnation is the site's catalog incarnation (catalog.IncarnationLen
	// bytes, or none from senders that predate it). Generations compare
	// only within one incarnation: an index refuses a full update older
	// than the last full update it holds, and a delta older than the
	// state it holds, of the same site and incarnation (ErrReplay); a
	// different incarnation starts over.
	Incarnation []byte
}

// Check reports what is wrong with h, naming the field ("header.site: …"),
// or nil. Receive checks every header with it (after setting a zero
// Updated to the time of receipt).
func (h *Header) Check() error {
	if n := len(h.Incarnation); n != 0 && n != catalog.IncarnationLen {
		return fmt.Errorf("header.incarnation: %d bytes; want %d, or none", n, catalog.IncarnationLen)
	}
	if h.Mode != ModeList && h.Mode != ModeBloom && h.Mode != ModeDelta {
		return fmt.Errorf("header.mode: %v is not list, bloom or delta", h.Mode)
	}
	if err := checkSite("header.site", h.Site); err != nil {
		return err
	}
	if err := checkEndpoint(h.Endpoint); err != nil {
		return err
	}
	if len(h.Via) > MaxVia {
		return fmt.Errorf("header.via: %d hops, more than %d", len(h.Via), MaxVia)
	}
	for i, v := range h.Via {
		if err := checkSite(fmt.Sprintf("header.via[%d]", i), v); err != nil {
			return err
		}
		if j := slices.Index(h.Via[:i], v); j >= 0 {
			return fmt.Errorf("header.via[%d]: index %q already at via[%d]: a loop in the index hierarchy", i, v, j)
		}
	}
	if h.Validity <= 0 || h.Validity > MaxValidity {
		return fmt.Errorf("header.validity: %v is out of range (0, %v]", h.Validity, MaxValidity)
	}
	switch h.Mode {
	case ModeBloom:
		if err := h.Bloom.Check(); err != nil {
			return fmt.Errorf("header.%v", err)
		}
		if h.Entries != 0 {
			return fmt.Errorf("header.entries: %d in a bloom update (the count goes in bloom.entries)", h.Entries)
		}
	case ModeDelta:
		if h.BaseGeneration > h.Generation {
			return fmt.Errorf("header.base_generation: %d is after generation %d", h.BaseGeneration, h.Generation)
		}
	}
	if h.Mode != ModeBloom && h.Bloom != (BloomParams{}) {
		return fmt.Errorf("header.bloom: set in a %v update", h.Mode)
	}
	if h.Entries > MaxEntries {
		return fmt.Errorf("header.entries: %d is more than %d", h.Entries, MaxEntries)
	}
	return nil
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

// Part is what one message of an update stream carries.
type Part uint8

const (
	// PartNone is a message with nothing in it, which Receive refuses.
	PartNone Part = iota
	PartHeader
	PartLFNs  // a chunk of a list update's names
	PartBloom // a chunk of a Bloom update's filter words
	PartDelta // a chunk of a delta update's changes
)

// Message is one message of an update stream as Receive reads it: the
// header first, then chunks of the body of the header's mode, in order.
// The fields of Part are set; the others are ignored.
type Message struct {
	Part   Part
	Header Header
	// LFNs are a list chunk's names, at most MaxChunkNames. Receive keeps
	// them.
	LFNs []string
	// Words are a Bloom chunk's words, the filter's next ones in the layout
	// of BloomVersion. Receive copies them: the stream may reuse the slice
	// for its next message.
	Words []uint64
	// Added and Removed are a delta chunk's changes, at most MaxChunkNames
	// in all. Receive keeps them.
	Added, Removed []string
}

// Update is one whole soft-state update, as a Sink sends it: the header and
// the body of its mode. Build one with ListUpdate, BloomUpdate or
// DeltaUpdate, which set the header's mode and count.
type Update struct {
	Header Header
	// LFNs are a list update's names: exactly Header.Entries of them,
	// yielded once, as they are sent.
	LFNs iter.Seq[string]
	// Words are a Bloom update's filter: Header.Bloom.Words() words in the
	// layout of BloomVersion. A Sink does not modify them.
	Words []uint64
	// Added and Removed are a delta update's changes; no LFN is in both.
	Added, Removed []string
}

// ListUpdate is a full list update of the names lfns yields; h.Entries
// must be their number (the header travels first), else the Sink fails
// the update and the index keeps the site's previous state.
func ListUpdate(h Header, lfns iter.Seq[string]) Update {
	h.Mode = ModeList
	return Update{Header: h, LFNs: lfns}
}

// BloomUpdate is a full Bloom filter update: h.Bloom describes the filter,
// words hold it. It sets h.Entries to 0 (the count travels in
// h.Bloom.Entries).
func BloomUpdate(h Header, words []uint64) Update {
	h.Mode, h.Entries = ModeBloom, 0
	return Update{Header: h, Words: words}
}

// DeltaUpdate is a delta on top of h.BaseGeneration, which must be the
// generation the index holds for the site (else the Sink's error wraps
// ErrOutOfSequence, and a full update is due). It sets h.Entries to
// len(added) + len(removed).
func DeltaUpdate(h Header, added, removed []string) Update {
	h.Mode, h.Entries = ModeDelta, uint64(len(added)+len(removed))
	return Update{Header: h, Added: added, Removed: removed}
}

// Check reports what keeps u from being sent, or nil: a header whose
// entries exceed MaxEntries, a Bloom filter whose header is invalid or
// whose words do not match it. (A list whose names do not match the count
// is found as it is sent.)
func (u *Update) Check() error {
	h := &u.Header
	if h.Entries > MaxEntries {
		return fmt.Errorf("%v update: %d entries, more than an index accepts (%d)", h.Mode, h.Entries, MaxEntries)
	}
	if h.Mode == ModeBloom {
		if err := h.Bloom.Check(); err != nil {
			return fmt.Errorf("bloom update: %w", err)
		}
		if uint64(len(u.Words)) != h.Bloom.Words() {
			return fmt.Errorf("bloom update: %d words for a filter of %d bits (want %d)", len(u.Words), h.Bloom.M, h.Bloom.Words())
		}
	}
	return nil
}
