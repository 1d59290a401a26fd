package index

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/solar-archive/rls/api/rlsv1"
)

// withIncarnation sets the incarnation in an update's header.
func withIncarnation(inc byte, msgs []*rlsv1.UpdateRequest) []*rlsv1.UpdateRequest {
	msgs[0].GetHeader().Incarnation = bytes.Repeat([]byte{inc}, 16)
	return msgs
}

func TestReplayRefused(t *testing.T) {
	dir := t.TempDir()
	x := openTest(t, dir, nil)
	const a, b = 0xaa, 0xbb
	mustReceive(t, x, withIncarnation(a, listMsgs("nso", 5, "1", "2")))
	steps := []struct {
		name string
		msgs []*rlsv1.UpdateRequest
		want error // nil: applied
	}{
		{"older full update of the same incarnation", withIncarnation(a, listMsgs("nso", 3, "evil")), ErrReplay},
		{"same generation again: an idempotent refresh", withIncarnation(a, listMsgs("nso", 5, "1", "2")), nil},
		{"delta on top", withIncarnation(a, deltaMsgs("nso", 5, 7, []string{"3"}, nil)), nil},
		{"older delta of the same incarnation", withIncarnation(a, deltaMsgs("nso", 4, 6, []string{"evil"}, nil)), ErrReplay},
		{"delta of another incarnation", withIncarnation(b, deltaMsgs("nso", 7, 8, []string{"evil"}, nil)), ErrOutOfSequence},
		{"older full update without incarnation is another incarnation", listMsgs("nso", 3, "1"), nil},
		{"then an older one without incarnation is a replay", listMsgs("nso", 2, "evil"), ErrReplay},
		{"a rebuilt catalog starts over", withIncarnation(b, listMsgs("nso", 1, "1", "4")), nil},
	}
	for _, s := range steps {
		_, err := x.Receive(recvFrom(s.msgs))
		if s.want == nil && err != nil || s.want != nil && !errors.Is(err, s.want) {
			t.Fatalf("%s: Receive = %v, want %v", s.name, err, s.want)
		}
	}
	wantWhere(t, x, []string{"1", "4", "evil"}, "nso/list", "nso/list", "")
	if got := x.Sites()[0].Incarnation; !bytes.Equal(got, bytes.Repeat([]byte{b}, 16)) {
		t.Fatalf("Sites()[0].Incarnation = %x", got)
	}

	// The incarnation and generation survive a restart (the snapshot).
	x.Close()
	x = openTest(t, dir, nil)
	if _, err := x.Receive(recvFrom(withIncarnation(b, listMsgs("nso", 0, "evil")))); !errors.Is(err, ErrReplay) {
		t.Fatalf("after restart, replay: %v, want ErrReplay", err)
	}
	wantWhere(t, x, []string{"1", "evil"}, "nso/list", "")
}

func TestIncarnationLength(t *testing.T) {
	x := openTest(t, t.TempDir(), nil)
	msgs := listMsgs("nso", 1, "1")
	msgs[0].GetHeader().Incarnation = []byte{1, 2, 3}
	if _, err := x.Receive(recvFrom(msgs)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("3-byte incarnation: %v, want ErrInvalid", err)
	}
}

func TestReceiveCheckedRefusesBeforeTheBody(t *testing.T) {
	x := openTest(t, t.TempDir(), nil)
	mustReceive(t, x, listMsgs("jsoc", 1, "1", "2"))
	msgs := listMsgs("jsoc", 2, "fake")
	reads := 0
	recv := recvFrom(msgs)
	denied := errors.New("denied")
	var seen []string
	_, err := x.ReceiveChecked(func() (*rlsv1.UpdateRequest, error) {
		reads++
		return recv()
	}, func(h Header) error {
		seen = append(seen, h.Site)
		return denied
	})
	if !errors.Is(err, denied) {
		t.Fatalf("ReceiveChecked = %v, want the check's error", err)
	}
	if reads != 1 || !slices.Equal(seen, []string{"jsoc"}) {
		t.Fatalf("read %d messages, checked %q; want 1 and [jsoc]", reads, seen)
	}
	wantWhere(t, x, []string{"1", "fake"}, "jsoc/list", "")

	// Allowed, it applies.
	if _, err := x.ReceiveChecked(recvFrom(listMsgs("jsoc", 3, "3")), func(Header) error { return nil }); err != nil {
		t.Fatal(err)
	}
	wantWhere(t, x, []string{"1", "3"}, "", "jsoc/list")
}
