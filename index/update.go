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
// expiry times.
package index

import (
	"fmt"
	"math"
	"math/bits"
	"time"
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
