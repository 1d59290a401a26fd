package transfer

// WithFetchedHook returns o with fn called after each Read call of the
// pull, once what the call brought is written, synced and journaled, with
// the number of bytes it received (see pullHooks.fetched).
func WithFetchedHook(o PullOptions, fn func(n int64)) PullOptions {
	o.hooks.fetched = fn
	return o
}
