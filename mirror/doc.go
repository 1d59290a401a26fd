// Package mirror brings missing storage units to a site: the successor of the
// JSOC mirroring daemon (JMD).
//
// A site learns which sunums it should hold (Accept, fed by an intake such as
// the PostgreSQL sunum_queue reader in mirror/intake, or by rlsctl), asks the
// replica location index which peers hold them (Locator, verified), pulls
// them from the best peers first and from the authoritative site last
// (Puller), and registers each placed unit in its own catalog (Registrar),
// so that the next soft-state update offers it to the next site.
//
// Every sunum has one durable Record in a Pebble store (Store), in exactly
// one of the JMD states:
//
//	NQUE  accepted, waiting for the scheduler
//	REDY  candidate sources located
//	BQUED in a lane's batcher, waiting for a worker
//	QUED  being pulled
//	DONE  placed atomically, verified and registered (final)
//	FAIL  retriable: the reason, every attempt, and when it is retried
//	PNDG  tier 2: no peer holds it yet; located again every interval
//	INVD  the authority's catalog has no such sunum (Retry re-queues it)
//
// A timeout is never INVD: only a definitive "no such LFN" from the
// authority's catalog is.
//
// The Engine works two lanes with separate workers, so that user requests
// never wait behind the bulk backlog. The queue is read from the store's
// (lane, due time) index a window at a time: memory does not grow with the
// backlog. A lane sends a batch when it is full, or at once to a free
// worker when no other unit is about to join it; while every worker is
// busy, units gather into full batches.
//
// Cancel forgets sunums that are not DONE, and a cancelled unit never ends
// DONE or registered:
//
//   - a unit not being pulled is forgotten (its record goes);
//   - a unit being pulled (QUED) and not yet placed is taken back: it is
//     not placed (a pull call whose units are all cancelled stops at once;
//     in a call with others its bytes may still arrive, but it is not
//     renamed into place) and not registered;
//   - a unit a pull had placed before the cancel took effect is forgotten
//     and not registered, and CancelResult.Placed says so: its directory
//     stays in the store, and a later request for it finds it in place,
//     verifies it and registers it, without pulling it again;
//   - a unit whose registration has begun, or that is DONE, is kept
//     (CancelResult.Kept): it becomes (or stays) DONE.
package mirror
