package transfer

import "time"

// SetHashGrace sets how long s's FastManifest leaves files to be claimed
// by a Read before hashing them itself (hashGrace), so that a test whose
// Read must claim them does not depend on how soon, on a loaded machine,
// it starts. Call it before s's first FastManifest.
func SetHashGrace(s *Source, d time.Duration) { s.grace = d }

// WithFetchedHook returns o with fn called after each Read call of the
// pull, once what the call brought is written, synced and journaled, with
// the number of bytes it received (see pullHooks.fetched).
func WithFetchedHook(o PullOptions, fn func(n int64)) PullOptions {
	o.hooks.fetched = fn
	return o
}

// SetJoinedHook sets fn to be called as a digest call of s (a Manifest's,
// or a Read's with a digest) starts waiting for a hash of a file that
// another call is making (a Read hashing it as it sends it, or the
// background hashing), with the file's absolute path. Call it before s is
// used.
func SetJoinedHook(s *Source, fn func(name string)) { s.joined = fn }
