package mirror

import (
	"context"
	"io"
	"sync"

	"github.com/solar-archive/rls/transfer"
)

// TransferPuller is the Puller over transfer.PullUnits: one call per
// batch, with InPlace (a unit an earlier run placed is verified and
// reported, not fetched again) and ManifestFirst (so that every result
// carries the manifest's digest). Peers are dialed once per address and
// kept. It is safe for concurrent use.
type TransferPuller struct {
	Options transfer.PullOptions
	Dial    func(addr string) (transfer.Peer, error)

	mu    sync.Mutex
	peers map[string]transfer.Peer
}

func (p *TransferPuller) peer(addr string) (transfer.Peer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pe, ok := p.peers[addr]; ok {
		return pe, nil
	}
	pe, err := p.Dial(addr)
	if err != nil {
		return nil, err
	}
	if p.peers == nil {
		p.peers = map[string]transfer.Peer{}
	}
	p.peers[addr] = pe
	return pe, nil
}

// Pull implements Puller.
func (p *TransferPuller) Pull(ctx context.Context, src Source, units []PullUnit) []PullResult {
	out := make([]PullResult, len(units))
	pe, err := p.peer(src.Endpoint)
	if err != nil {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	o := p.Options
	o.Sources, o.InPlace, o.ManifestFirst = []transfer.Peer{pe}, true, true
	o.BeforePlace = func(i int) error {
		if units[i].Place != nil && !units[i].Place() {
			return ErrCancelled
		}
		return nil
	}
	tu := make([]transfer.Unit, len(units))
	for i, u := range units {
		tu[i] = transfer.Unit{PFN: u.PFN, Dest: u.Dest}
	}
	rs, _ := transfer.PullUnits(ctx, tu, o)
	for i, r := range rs {
		out[i] = PullResult{Bytes: r.Bytes, Fetched: r.Fetched, Files: int64(r.Files), InPlace: r.InPlace,
			Elapsed: r.Elapsed, Err: r.Err}
		if !r.Manifest.IsZero() {
			out[i].SHA256 = r.Manifest.String()
		}
	}
	return out
}

// Close closes the peers that can be closed.
func (p *TransferPuller) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pe := range p.peers {
		if c, ok := pe.(io.Closer); ok {
			_ = c.Close()
		}
	}
	p.peers = nil
	return nil
}
