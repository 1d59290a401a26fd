package index

import (
	"context"
	"encoding/binary"
	"fmt"
	"iter"

	"github.com/solar-archive/rls/api/rlsv1"
)

// Chunk sizes of the updates this package sends. They stay well below what
// an index accepts (MaxChunkNames names, gRPC's default 4 MiB message).
const (
	sendChunkNames = 16 << 10 // names per list or delta chunk
	sendChunkBytes = 1 << 20  // name bytes per list or delta chunk, and bytes per Bloom chunk
)

// SendList sends a full list update on one Update stream of cl: the header,
// then the names of lfns in chunks of at most 16,384 names or 1 MiB. h.Mode
// is set to ModeList; h.Entries must be the number of names lfns yields (the
// header travels first), or SendList fails and aborts the stream, so that
// the index keeps the site's previous state. lfns is consumed once, as the
// chunks are sent. It returns the index's answer once it committed the
// update.
func SendList(ctx context.Context, cl rlsv1.IndexClient, h Header, lfns iter.Seq[string]) (*rlsv1.UpdateResponse, error) {
	h.Mode = ModeList
	return send(ctx, cl, h, func(emit func(*rlsv1.UpdateRequest) error) error {
		var n uint64
		c := chunker{emit: func(names []string) error {
			return emit(&rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Lfns{Lfns: &rlsv1.LFNChunk{Lfns: names}}})
		}}
		for lfn := range lfns {
			if n++; n > h.Entries {
				return fmt.Errorf("list update: more names than the header's %d entries", h.Entries)
			}
			if err := c.add(lfn); err != nil {
				return err
			}
		}
		if n != h.Entries {
			return fmt.Errorf("list update: %d names, but the header says %d entries", n, h.Entries)
		}
		return c.flush()
	})
}

// SendBloom sends a full Bloom filter update on one Update stream of cl: the
// header with h.Bloom, then the filter's words, little-endian, in chunks of
// at most 1 MiB. h.Mode is set to ModeBloom and h.Entries to 0 (the count
// travels in h.Bloom.Entries). words must hold exactly h.Bloom.Words()
// words, in the layout of BloomVersion; SendBloom does not modify them.
func SendBloom(ctx context.Context, cl rlsv1.IndexClient, h Header, words []uint64) (*rlsv1.UpdateResponse, error) {
	h.Mode, h.Entries = ModeBloom, 0
	if err := h.Bloom.Check(); err != nil {
		return nil, fmt.Errorf("bloom update: %w", err)
	}
	if uint64(len(words)) != h.Bloom.Words() {
		return nil, fmt.Errorf("bloom update: %d words for a filter of %d bits (want %d)", len(words), h.Bloom.M, h.Bloom.Words())
	}
	return send(ctx, cl, h, func(emit func(*rlsv1.UpdateRequest) error) error {
		const perChunk = sendChunkBytes / 8
		for len(words) > 0 {
			n := min(len(words), perChunk)
			// A fresh buffer per chunk: gRPC may hold a sent message.
			b := make([]byte, 0, 8*n)
			for _, w := range words[:n] {
				b = binary.LittleEndian.AppendUint64(b, w)
			}
			if err := emit(&rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Bloom{Bloom: &rlsv1.BloomChunk{Words: b}}}); err != nil {
				return err
			}
			words = words[n:]
		}
		return nil
	})
}

// SendDelta sends a delta update on one Update stream of cl: the header,
// then the added and the removed LFNs in chunks of at most 16,384 names or
// 1 MiB. h.Mode is set to ModeDelta and h.Entries to len(added) +
// len(removed); h.BaseGeneration must be the generation the index holds for
// the site, else the index answers FAILED_PRECONDITION and the sender must
// send a full update instead. An LFN must not be both added and removed.
func SendDelta(ctx context.Context, cl rlsv1.IndexClient, h Header, added, removed []string) (*rlsv1.UpdateResponse, error) {
	h.Mode, h.Entries = ModeDelta, uint64(len(added)+len(removed))
	return send(ctx, cl, h, func(emit func(*rlsv1.UpdateRequest) error) error {
		for len(added)+len(removed) > 0 {
			var ch rlsv1.DeltaChunk
			names, size := 0, 0
			for names < sendChunkNames && size < sendChunkBytes && len(added) > 0 {
				ch.Added = append(ch.Added, added[0])
				names, size, added = names+1, size+len(added[0]), added[1:]
			}
			for names < sendChunkNames && size < sendChunkBytes && len(removed) > 0 {
				ch.Removed = append(ch.Removed, removed[0])
				names, size, removed = names+1, size+len(removed[0]), removed[1:]
			}
			if err := emit(&rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Delta{Delta: &ch}}); err != nil {
				return err
			}
		}
		return nil
	})
}

// send runs one Update stream: the header, the body that body emits, then
// the index's answer. If body fails, the stream is cancelled rather than
// closed, so that the index never commits a partial update.
func send(ctx context.Context, cl rlsv1.IndexClient, h Header, body func(emit func(*rlsv1.UpdateRequest) error) error) (*rlsv1.UpdateResponse, error) {
	if h.Entries > MaxEntries {
		return nil, fmt.Errorf("%v update: %d entries, more than an index accepts (%d)", h.Mode, h.Entries, MaxEntries)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := cl.Update(ctx)
	if err != nil {
		return nil, err
	}
	emit := func(r *rlsv1.UpdateRequest) error {
		if err := st.Send(r); err != nil {
			// The server ended the stream; its status comes from CloseAndRecv.
			if _, rerr := st.CloseAndRecv(); rerr != nil {
				return rerr
			}
			return fmt.Errorf("%v update: the index ended the stream before the update was sent (%w)", h.Mode, err)
		}
		return nil
	}
	if err := emit(&rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Header{Header: HeaderProto(h)}}); err != nil {
		return nil, err
	}
	if err := body(emit); err != nil {
		return nil, err
	}
	return st.CloseAndRecv()
}

// chunker groups names into chunks of at most sendChunkNames names or
// sendChunkBytes bytes and hands each to emit, which owns it.
type chunker struct {
	emit  func([]string) error
	names []string
	size  int
}

func (c *chunker) add(name string) error {
	if len(c.names) >= sendChunkNames || (c.size+len(name) > sendChunkBytes && len(c.names) > 0) {
		if err := c.flush(); err != nil {
			return err
		}
	}
	c.names = append(c.names, name)
	c.size += len(name)
	return nil
}

func (c *chunker) flush() error {
	if len(c.names) == 0 {
		return nil
	}
	names := c.names
	c.names, c.size = make([]string, 0, len(names)), 0
	return c.emit(names)
}
