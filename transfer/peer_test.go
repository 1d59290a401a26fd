package transfer_test

import (
	"testing"

	"github.com/solar-archive/rls/transfer"
	"github.com/solar-archive/rls/transfer/peertest"
)

// TestSourcePeer: a Source in the process passes the Peer conformance
// suite (api runs it against the gRPC client).
func TestSourcePeer(t *testing.T) {
	peertest.Run(t, func(t *testing.T, root string) transfer.Peer { return newSource(t, root) })
}
