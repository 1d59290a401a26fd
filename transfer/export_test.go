package transfer

// Syncs is the number of fsync(2) and syncfs(2) calls pulls made so far.
func Syncs() int64 { return syncs.Load() }
