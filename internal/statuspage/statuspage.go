// Package statuspage renders rlsd's status page: one server-rendered HTML
// page (html/template, embedded; no script) with the site, its roles and
// the figures each role reports, for an operator's browser.
//
// The page is fed by small interfaces, one per role (Catalog, Index,
// Senders, Transfer, Mirror), which cmd/rlsd implements over the role
// packages; a role that does not run leaves its source nil and its section
// out. The same Snapshot feeds rlsd's periodic stats line.
package statuspage

import (
	"context"
	"time"
)

// Info describes the daemon.
type Info struct {
	Site    string
	Version string
	Roles   []string
	Started time.Time
}

// CatalogStatus are the local replica catalog's counts.
type CatalogStatus struct {
	LFNs, PFNs, Mappings uint64
	Seq                  uint64 // last change-feed sequence number
	DiskBytes            uint64
}

// Catalog reports the catalog's counts, or why it cannot (a store that
// stopped after a storage error).
type Catalog interface {
	CatalogStatus() (CatalogStatus, error)
}

// IndexSite is one site whose soft state the index holds.
type IndexSite struct {
	Site, Endpoint string
	Mode           string // of the last full update: list or bloom
	Generation     uint64
	Entries        uint64
	Deltas         uint64
	Updated        time.Time // when the site produced the state
	Received       time.Time // when the index received it
	Expires        time.Time
	Via            []string // indexes it came through, nearest last
}

// IndexStatus is what the replica location index holds.
type IndexStatus struct {
	Sites        []IndexSite // sorted by site
	ExactEntries uint64      // (site, LFN) pairs held exactly
	BloomBits    uint64
	MemoryBytes  uint64
}

// Index reports the index's sites and figures.
type Index interface {
	IndexStatus() IndexStatus
}

// SendStatus is the state of soft-state sends to one target index.
type SendStatus struct {
	From        string // what sends: "catalog" (role lrc) or "index" (forwarding, role rli)
	Target      string // the index's address
	Mode        string
	Interval    time.Duration
	Generation  uint64    // the target acknowledged last; 0 if unknown
	LastSuccess time.Time // zero: never
	LastError   string    // of the last attempt; "" if it succeeded
	Failures    int       // since the last success
}

// Senders report the soft-state sends, one SendStatus per target.
type Senders interface {
	SendStatus() []SendStatus
}

// TransferStatus are the transfer role's counters, since the start.
type TransferStatus struct {
	BytesSent   uint64
	FilesHashed uint64
	BytesHashed uint64
	CachedFiles uint64
}

// Transfer reports the transfer role's counters.
type Transfer interface {
	TransferStatus() TransferStatus
}

// MirrorState counts the storage units in one mirror state (NQUE, DONE...).
type MirrorState struct {
	State string
	Units uint64
}

// SeriesCoverage is how much of a series the site holds.
type SeriesCoverage struct {
	Series      string
	Done, Total uint64
}

// MirrorFailure is one recent failed storage unit.
type MirrorFailure struct {
	Sunum  string
	Reason string
	At     time.Time
	Retry  time.Time // zero: not retried
}

// MirrorStatus is what the mirror engine reports.
type MirrorStatus struct {
	States   []MirrorState // in the order to show
	Series   []SeriesCoverage
	Failures []MirrorFailure // most recent first
}

// Mirror reports the mirror engine's state; the page shows its section
// only when Sources.Mirror is set.
type Mirror interface {
	MirrorStatus(ctx context.Context) (MirrorStatus, error)
}

// Sources are what the page shows; nil sources leave their sections out.
// Set them before the page serves; they must be safe for concurrent use.
type Sources struct {
	Info     Info
	Catalog  Catalog
	Index    Index
	Senders  []Senders
	Transfer Transfer
	Mirror   Mirror
	// RPCs, when set, returns the gRPC calls handled since the start.
	RPCs func() (uint64, error)
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Snapshot is the state of every source at one time.
type Snapshot struct {
	Info   Info
	Now    time.Time
	Uptime time.Duration
	// RPCs are the gRPC calls handled since the start; RPCsKnown is false
	// when there is no RPC source or it failed.
	RPCs      uint64
	RPCsKnown bool

	Catalog    *CatalogStatus // nil: no catalog
	CatalogErr error
	Index      *IndexStatus
	Sends      []SendStatus
	Transfer   *TransferStatus
	Mirror     *MirrorStatus
	MirrorErr  error
}

// Snapshot reads every source. It is safe for concurrent use when the
// sources are.
func (s *Sources) Snapshot(ctx context.Context) Snapshot {
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	snap := Snapshot{Info: s.Info, Now: now, Uptime: now.Sub(s.Info.Started)}
	if s.RPCs != nil {
		n, err := s.RPCs()
		snap.RPCs, snap.RPCsKnown = n, err == nil
	}
	if s.Catalog != nil {
		st, err := s.Catalog.CatalogStatus()
		if err != nil {
			snap.CatalogErr = err
		} else {
			snap.Catalog = &st
		}
	}
	if s.Index != nil {
		st := s.Index.IndexStatus()
		snap.Index = &st
	}
	for _, sd := range s.Senders {
		snap.Sends = append(snap.Sends, sd.SendStatus()...)
	}
	if s.Transfer != nil {
		st := s.Transfer.TransferStatus()
		snap.Transfer = &st
	}
	if s.Mirror != nil {
		st, err := s.Mirror.MirrorStatus(ctx)
		snap.Mirror, snap.MirrorErr = &st, err
	}
	return snap
}
