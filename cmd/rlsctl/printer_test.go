package main

import (
	"bytes"
	"encoding/json"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/solar-archive/rls/api/rlsv1"
)

func printTo(t *testing.T, format string, r result) string {
	t.Helper()
	var b bytes.Buffer
	if err := newPrinter(&b, format).print(r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// decodeJSON decodes one JSON document, keeping numbers as json.Number, and
// fails the test if anything follows it.
func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("invalid JSON %q: %v", s, err)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document in %q", s)
	}
	return v
}

// isInteger reports whether v is a JSON number without fraction or exponent.
func isInteger(v any) bool {
	n, ok := v.(json.Number)
	return ok && !strings.ContainsAny(n.String(), ".eE")
}

func testStats() statsResult {
	return newStatsResult(&rlsv1.StatsResponse{
		Site: "jsoc", Version: "v0.1.0", Roles: []string{"lrc"},
		Uptime: durationpb.New(90 * time.Second),
		Catalog: &rlsv1.CatalogStats{
			Lfns: 1234567, Pfns: 1234568, Mappings: 2469135, Seq: 99, FirstSeq: 1,
			AttributeDefs: 2, DiskBytes: 1 << 40,
		},
	})
}

func TestStatsJSON(t *testing.T) {
	m := decodeJSON(t, printTo(t, "json", testStats())).(map[string]any)
	for key, want := range map[string]string{
		"lfns": "1234567", "pfns": "1234568", "mappings": "2469135", "seq": "99",
		"first_seq": "1", "attribute_defs": "2", "disk_bytes": "1099511627776",
	} {
		if !isInteger(m[key]) || m[key].(json.Number).String() != want {
			t.Errorf("stats %q = %#v, want integer %s", key, m[key], want)
		}
	}
	if m["site"] != "jsoc" || m["uptime_seconds"].(json.Number).String() != "90" {
		t.Errorf("stats = %v", m)
	}

	// Without the lrc role there are no catalog keys at all.
	noCat := newStatsResult(&rlsv1.StatsResponse{Site: "x", Roles: []string{"rli"}})
	m = decodeJSON(t, printTo(t, "json", noCat)).(map[string]any)
	if _, ok := m["lfns"]; ok {
		t.Errorf("stats without catalog has lfns: %v", m)
	}
}

func TestStatsTable(t *testing.T) {
	out := printTo(t, "table", testStats())
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "FIELD") || !regexp.MustCompile(`(?m)^mappings +2469135$`).MatchString(out) {
		t.Errorf("stats table:\n%s", out)
	}
	// Aligned: the value column starts at the same offset on every line.
	col := strings.Index(lines[0], "VALUE")
	for _, l := range lines[1:] {
		if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("misaligned line %q (value column at %d)", l, col)
		}
	}
}

func TestQueryResultsJSON(t *testing.T) {
	r := queryResults{items: []queryItem{
		newQueryItem(false, "a", []string{"/p1", "/p2"}),
		newQueryFailure(false, "b", codes.NotFound, `lfn "b": not found`),
	}}
	got := decodeJSON(t, printTo(t, "json", r))
	want := decodeJSON(t, `[{"lfn":"a","pfns":["/p1","/p2"]},
		{"lfn":"b","error":{"code":"NOT_FOUND","message":"lfn \"b\": not found"}}]`)
	if !jsonEqual(got, want) {
		t.Errorf("query JSON = %v, want %v", got, want)
	}

	byPFN := queryResults{byPFN: true, items: []queryItem{newQueryItem(true, "/p", []string{"a"})}}
	if got, want := decodeJSON(t, printTo(t, "json", byPFN)), decodeJSON(t, `[{"pfn":"/p","lfns":["a"]}]`); !jsonEqual(got, want) {
		t.Errorf("query pfn JSON = %v, want %v", got, want)
	}
	if got := printTo(t, "json", queryResults{}); strings.TrimSpace(got) != "[]" {
		t.Errorf("empty query JSON = %q, want []", got)
	}
}

func TestQueryResultsTable(t *testing.T) {
	r := queryResults{items: []queryItem{
		newQueryItem(false, "a", []string{"/p1", "/p2"}),
		newQueryFailure(false, "nope", codes.NotFound, "not found"),
		newQueryItem(false, "long-name", []string{"tab\there"}),
	}}
	want := "LFN        PFN\n" +
		"a          /p1\n" +
		"a          /p2\n" +
		"long-name  \"tab\\there\"\n"
	if got := printTo(t, "table", r); got != want {
		t.Errorf("query table:\n%s\nwant:\n%s", got, want)
	}
}

func TestWildcardJSON(t *testing.T) {
	r := wildcardResult{Mappings: []mappingView{{"a", "/p"}}, More: true}
	got := decodeJSON(t, printTo(t, "json", r))
	if want := decodeJSON(t, `{"mappings":[{"lfn":"a","pfn":"/p"}],"more":true}`); !jsonEqual(got, want) {
		t.Errorf("wildcard JSON = %v, want %v", got, want)
	}
	empty := decodeJSON(t, printTo(t, "json", wildcardResult{Mappings: []mappingView{}}))
	if want := decodeJSON(t, `{"mappings":[],"more":false}`); !jsonEqual(empty, want) {
		t.Errorf("empty wildcard JSON = %v", empty)
	}
}

func TestAttrValuesJSON(t *testing.T) {
	tm := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	r := attrValuesResult{Object: "lfn", ObjectName: "a", Attributes: []attrView{
		{"size", "int", valueView(&rlsv1.Value{V: &rlsv1.Value_Int{Int: 9007199254740993}})},
		{"ratio", "float", valueView(&rlsv1.Value{V: &rlsv1.Value_Float{Float: 0.5}})},
		{"bad", "float", valueView(&rlsv1.Value{V: &rlsv1.Value_Float{Float: math.Inf(1)}})},
		{"series", "string", valueView(&rlsv1.Value{V: &rlsv1.Value_String_{String_: "hmi.M_45s"}})},
		{"obs", "time", valueView(&rlsv1.Value{V: &rlsv1.Value_Time{Time: timestamppb.New(tm)}})},
	}}
	got := decodeJSON(t, printTo(t, "json", r))
	want := decodeJSON(t, `{"object":"lfn","object_name":"a","attributes":[
		{"name":"size","type":"int","value":9007199254740993},
		{"name":"ratio","type":"float","value":0.5},
		{"name":"bad","type":"float","value":"+Inf"},
		{"name":"series","type":"string","value":"hmi.M_45s"},
		{"name":"obs","type":"time","value":"2026-01-02T15:04:05Z"}]}`)
	if !jsonEqual(got, want) {
		t.Errorf("attr JSON = %v, want %v", got, want)
	}
	table := printTo(t, "table", r)
	if !strings.Contains(table, "size    int     9007199254740993\n") || !strings.Contains(table, "2026-01-02T15:04:05Z") {
		t.Errorf("attr table:\n%s", table)
	}
}

func TestWriteResult(t *testing.T) {
	r := writeResult{OK: true, Op: "create", Seq: 12, done: "created a -> /p"}
	if got, want := decodeJSON(t, printTo(t, "json", r)), decodeJSON(t, `{"ok":true,"op":"create","seq":12}`); !jsonEqual(got, want) {
		t.Errorf("write JSON = %v", got)
	}
	if got := printTo(t, "table", r); got != "created a -> /p (seq 12)\n" {
		t.Errorf("write table = %q", got)
	}
}

func TestStreamJSON(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		var b bytes.Buffer
		s := newPrinter(&b, "json").stream("LFN", "PFN")
		for i := range n {
			it := newQueryItem(false, "a<b>", []string{"/p"})
			it.Line = uint64(i + 1)
			s.add(it)
			s.flush()
		}
		if err := s.end(bulkSummary{Op: "query", Items: uint64(n), OK: uint64(n)}); err != nil {
			t.Fatal(err)
		}
		m := decodeJSON(t, b.String()).(map[string]any)
		results := m["results"].([]any)
		if len(results) != n {
			t.Fatalf("%d items: results %v", n, results)
		}
		if n > 0 && (results[0].(map[string]any)["lfn"] != "a<b>" || !isInteger(results[n-1].(map[string]any)["line"])) {
			t.Errorf("results %v", results)
		}
		sum := m["summary"].(map[string]any)
		if !isInteger(sum["items"]) || !isInteger(sum["failed"]) || sum["op"] != "query" {
			t.Errorf("summary %v", sum)
		}
	}
}

func TestStreamTable(t *testing.T) {
	var b bytes.Buffer
	s := newPrinter(&b, "table").stream("LFN", "PFN")
	s.add(newQueryItem(false, "a", []string{"/p1"}))
	s.add(newQueryItem(false, "bbb", []string{"/p2"}))
	if err := s.end(bulkSummary{Op: "query", Items: 2, OK: 2, ElapsedSeconds: 0.5, RatePerSecond: 4}); err != nil {
		t.Fatal(err)
	}
	want := "LFN  PFN\na    /p1\nbbb  /p2\n\n" +
		"OP     ITEMS  OK  FAILED  ELAPSED  RATE/S\n" +
		"query  2      2   0       500ms    4\n"
	if got := b.String(); got != want {
		t.Errorf("stream table:\n%s\nwant:\n%s", got, want)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
