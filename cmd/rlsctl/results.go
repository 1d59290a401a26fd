package main

// The result types below are what commands print. Their JSON field names
// (snake_case) are part of the command line contract: add fields, do not
// rename or remove them.

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/api/rlsv1"
)

// writeResult confirms a write: {"ok":true,"op":"create","seq":12}. seq is
// the change-feed sequence number the server returned (0 for attribute
// writes).
type writeResult struct {
	OK  bool   `json:"ok"`
	Op  string `json:"op"`
	Seq uint64 `json:"seq"`
	// done is the table form ("created lfn a -> pfn b").
	done string
}

func (r writeResult) writeTable(w io.Writer) {
	if r.Seq > 0 {
		fmt.Fprintf(w, "%s (seq %d)\n", r.done, r.Seq)
		return
	}
	fmt.Fprintln(w, r.done)
}

// existsResult answers "lrc exists": {"lfn":"a","pfn":"b","exists":true}.
type existsResult struct {
	LFN    string `json:"lfn,omitempty"`
	PFN    string `json:"pfn,omitempty"`
	Exists bool   `json:"exists"`
}

func (r existsResult) writeTable(w io.Writer) {
	var what string
	switch {
	case r.LFN != "" && r.PFN != "":
		what = fmt.Sprintf("mapping %s -> %s", cell(r.LFN), cell(r.PFN))
	case r.LFN != "":
		what = "lfn " + cell(r.LFN)
	default:
		what = "pfn " + cell(r.PFN)
	}
	if r.Exists {
		fmt.Fprintf(w, "%s exists\n", what)
	} else {
		fmt.Fprintf(w, "%s does not exist\n", what)
	}
}

// itemError is the failure of one item of a multi-item command:
// {"code":"NOT_FOUND","message":"..."}.
type itemError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	code    codes.Code
}

// queryItem is the answer for one queried name. By LFN it is
// {"lfn":"a","pfns":["p1","p2"]}, by PFN {"pfn":"p","lfns":["a"]}; a failed
// name has "error" instead of the list. Bulk queries add "line", the input
// line number.
type queryItem struct {
	Line  uint64     `json:"line,omitempty"`
	LFN   string     `json:"lfn,omitempty"`
	PFN   string     `json:"pfn,omitempty"`
	PFNs  []string   `json:"pfns,omitempty"`
	LFNs  []string   `json:"lfns,omitempty"`
	Error *itemError `json:"error,omitempty"`
}

func newQueryItem(byPFN bool, name string, names []string) queryItem {
	if byPFN {
		return queryItem{PFN: name, LFNs: nonNil(names)}
	}
	return queryItem{LFN: name, PFNs: nonNil(names)}
}

func newQueryFailure(byPFN bool, name string, c codes.Code, msg string) queryItem {
	q := newQueryItem(byPFN, name, nil)
	q.LFNs, q.PFNs = nil, nil
	q.Error = &itemError{Code: api.CodeName(c), Message: msg, code: c}
	return q
}

// writeRows writes the (name, other name) pairs of a successful item.
func (q queryItem) writeRows(w io.Writer) {
	if q.Error != nil {
		return
	}
	if q.PFN != "" {
		for _, l := range q.LFNs {
			row(w, q.PFN, l)
		}
		return
	}
	for _, p := range q.PFNs {
		row(w, q.LFN, p)
	}
}

func queryHeader(byPFN bool) []string {
	if byPFN {
		return []string{"PFN", "LFN"}
	}
	return []string{"LFN", "PFN"}
}

// queryResults is the answer of "lrc query lfn|pfn": a JSON array of
// queryItem in the order of the arguments.
type queryResults struct {
	byPFN bool
	items []queryItem
}

func (r queryResults) MarshalJSON() ([]byte, error) {
	if r.items == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(r.items)
}

func (r queryResults) writeTable(w io.Writer) {
	row(w, queryHeader(r.byPFN)...)
	for _, it := range r.items {
		it.writeRows(w)
	}
}

// mappingView is one mapping: {"lfn":"a","pfn":"p"}.
type mappingView struct {
	LFN string `json:"lfn"`
	PFN string `json:"pfn"`
}

// wildcardResult answers "lrc query wildcard":
// {"mappings":[{"lfn":"a","pfn":"p"}],"more":false}.
type wildcardResult struct {
	Mappings []mappingView `json:"mappings"`
	More     bool          `json:"more"`
	byPFN    bool
}

func (r wildcardResult) writeTable(w io.Writer) {
	row(w, queryHeader(r.byPFN)...)
	for _, m := range r.Mappings {
		if r.byPFN {
			row(w, m.PFN, m.LFN)
		} else {
			row(w, m.LFN, m.PFN)
		}
	}
}

// attrDefView is one attribute definition:
// {"name":"size","object":"lfn","type":"int"}.
type attrDefView struct {
	Name   string `json:"name"`
	Object string `json:"object"`
	Type   string `json:"type"`
}

// attrDefsResult answers "lrc attr list": a JSON array of attrDefView.
type attrDefsResult []attrDefView

func (r attrDefsResult) writeTable(w io.Writer) {
	row(w, "NAME", "OBJECT", "TYPE")
	for _, d := range r {
		row(w, d.Name, d.Object, d.Type)
	}
}

// attrView is one attribute value: {"name":"size","type":"int","value":42}.
// Values are JSON numbers (int, float; NaN and infinities as strings),
// strings, or RFC 3339 strings (time).
type attrView struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// attrValuesResult answers "lrc attr get":
// {"object":"lfn","object_name":"a","attributes":[attrView...]}.
type attrValuesResult struct {
	Object     string     `json:"object"`
	ObjectName string     `json:"object_name"`
	Attributes []attrView `json:"attributes"`
}

func (r attrValuesResult) writeTable(w io.Writer) {
	row(w, "NAME", "TYPE", "VALUE")
	for _, a := range r.Attributes {
		row(w, a.Name, a.Type, formatValue(a.Value))
	}
}

// searchHitView is one search hit: {"object_name":"a","value":42}.
type searchHitView struct {
	ObjectName string `json:"object_name"`
	Value      any    `json:"value"`
}

// searchResult answers "lrc attr search":
// {"hits":[searchHitView...],"more":false}.
type searchResult struct {
	Hits []searchHitView `json:"hits"`
	More bool            `json:"more"`
	// object heads the first column in table form ("LFN" or "PFN").
	object string
}

func (r searchResult) writeTable(w io.Writer) {
	row(w, strings.ToUpper(r.object), "VALUE")
	for _, h := range r.Hits {
		row(w, h.ObjectName, formatValue(h.Value))
	}
}

// pingResult answers "admin ping":
// {"site":"jsoc","version":"v1","roles":["lrc"],"time":"2026-...Z"}.
type pingResult struct {
	Site    string   `json:"site"`
	Version string   `json:"version"`
	Roles   []string `json:"roles"`
	Time    string   `json:"time,omitempty"`
}

func (r pingResult) writeTable(w io.Writer) {
	row(w, "SITE", "VERSION", "ROLES", "TIME")
	row(w, r.Site, r.Version, strings.Join(r.Roles, ","), r.Time)
}

// updateResult answers "admin update": {"results":[{"target":"rli:7600",
// "mode":"bloom","generation":12,"entries":1000,"took_seconds":0.2,
// "error":""}]}, one item per index target; error is empty on success, else
// "CODE: message".
type updateResult struct {
	Results []updateItem `json:"results"`
}

type updateItem struct {
	Target      string  `json:"target"`
	Mode        string  `json:"mode"`
	Generation  uint64  `json:"generation"`
	Entries     uint64  `json:"entries"`
	TookSeconds float64 `json:"took_seconds"`
	Error       string  `json:"error"`
}

func (r updateResult) writeTable(w io.Writer) {
	row(w, "TARGET", "MODE", "GENERATION", "ENTRIES", "TOOK", "ERROR")
	for _, it := range r.Results {
		errCell := it.Error
		if errCell == "" {
			errCell = "-"
		}
		took := time.Duration(it.TookSeconds * float64(time.Second)).Round(time.Millisecond)
		row(w, it.Target, it.Mode, strconv.FormatUint(it.Generation, 10), strconv.FormatUint(it.Entries, 10), took.String(), errCell)
	}
}

// catalogStatsView holds the catalog figures of "admin stats"; they are
// top-level keys of its JSON, present when the daemon runs the lrc role.
type catalogStatsView struct {
	LFNs          uint64 `json:"lfns"`
	PFNs          uint64 `json:"pfns"`
	Mappings      uint64 `json:"mappings"`
	Seq           uint64 `json:"seq"`
	FirstSeq      uint64 `json:"first_seq"`
	AttributeDefs uint64 `json:"attribute_defs"`
	DiskBytes     uint64 `json:"disk_bytes"`
	// The storage engine's pending work: both 0 once it has settled.
	CompactionDebtBytes uint64 `json:"compaction_debt_bytes"`
	CompactionsRunning  uint64 `json:"compactions_running"`
}

// statsResult answers "admin stats": {"site":"jsoc","version":"v1",
// "roles":["lrc"],"uptime_seconds":12.5,"lfns":N,"pfns":N,"mappings":N,
// "seq":N,"first_seq":N,"attribute_defs":N,"disk_bytes":N}, counts as JSON
// integers.
type statsResult struct {
	Site          string   `json:"site"`
	Version       string   `json:"version"`
	Roles         []string `json:"roles"`
	UptimeSeconds float64  `json:"uptime_seconds"`
	*catalogStatsView
	// Index holds the index figures when the daemon runs the rli role.
	Index *indexStatsView `json:"index,omitempty"`
}

// indexStatsView holds the index figures of "admin stats", under "index".
type indexStatsView struct {
	Sites        uint64 `json:"sites"`
	ListSites    uint64 `json:"list_sites"`
	BloomSites   uint64 `json:"bloom_sites"`
	ExactEntries uint64 `json:"exact_entries"`
	BloomBits    uint64 `json:"bloom_bits"`
	BloomGroups  uint64 `json:"bloom_groups"`
}

func (r statsResult) writeTable(w io.Writer) {
	row(w, "FIELD", "VALUE")
	row(w, "site", r.Site)
	row(w, "version", r.Version)
	row(w, "roles", strings.Join(r.Roles, ","))
	row(w, "uptime", (time.Duration(r.UptimeSeconds * float64(time.Second))).Round(time.Second).String())
	if c := r.catalogStatsView; c != nil {
		for _, f := range []struct {
			name string
			v    uint64
		}{
			{"lfns", c.LFNs}, {"pfns", c.PFNs}, {"mappings", c.Mappings},
			{"seq", c.Seq}, {"first_seq", c.FirstSeq},
			{"attribute_defs", c.AttributeDefs}, {"disk_bytes", c.DiskBytes},
			{"compaction_debt_bytes", c.CompactionDebtBytes}, {"compactions_running", c.CompactionsRunning},
		} {
			row(w, f.name, strconv.FormatUint(f.v, 10))
		}
	}
	if x := r.Index; x != nil {
		for _, f := range []struct {
			name string
			v    uint64
		}{
			{"index.sites", x.Sites}, {"index.list_sites", x.ListSites}, {"index.bloom_sites", x.BloomSites},
			{"index.exact_entries", x.ExactEntries}, {"index.bloom_bits", x.BloomBits}, {"index.bloom_groups", x.BloomGroups},
		} {
			row(w, f.name, strconv.FormatUint(f.v, 10))
		}
	}
}

// bulkSummary ends every bulk command: {"op":"create","items":N,"ok":N,
// "failed":N,"malformed":N,"elapsed_seconds":1.5,"rate_per_second":1000,
// "seq":N,"failures_by_code":{"ALREADY_EXISTS":N}}. items counts the input
// lines that were not blank or comments; failed includes malformed lines.
type bulkSummary struct {
	Op             string            `json:"op"`
	Items          uint64            `json:"items"`
	OK             uint64            `json:"ok"`
	Failed         uint64            `json:"failed"`
	Malformed      uint64            `json:"malformed"`
	ElapsedSeconds float64           `json:"elapsed_seconds"`
	RatePerSecond  float64           `json:"rate_per_second"`
	Seq            uint64            `json:"seq,omitempty"`
	FailuresByCode map[string]uint64 `json:"failures_by_code,omitempty"`
}

func (s bulkSummary) writeTable(w io.Writer) {
	row(w, "OP", "ITEMS", "OK", "FAILED", "ELAPSED", "RATE/S")
	row(w, s.Op,
		strconv.FormatUint(s.Items, 10),
		strconv.FormatUint(s.OK, 10),
		strconv.FormatUint(s.Failed, 10),
		(time.Duration(s.ElapsedSeconds * float64(time.Second))).Round(time.Millisecond).String(),
		strconv.FormatFloat(s.RatePerSecond, 'f', 0, 64))
}

// versionResult answers "version":
// {"version":"v0.1.0","go":"go1.26.8","commit":"abc..."}.
type versionResult struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	Commit  string `json:"commit,omitempty"`
}

func (r versionResult) writeTable(w io.Writer) {
	fmt.Fprintf(w, "rlsctl %s (%s", r.Version, r.Go)
	if r.Commit != "" {
		fmt.Fprintf(w, ", commit %s", r.Commit)
	}
	fmt.Fprintln(w, ")")
}

// Conversions from the wire types.

func objectName(o rlsv1.ObjectType) string {
	switch o {
	case rlsv1.ObjectType_OBJECT_TYPE_LFN:
		return "lfn"
	case rlsv1.ObjectType_OBJECT_TYPE_PFN:
		return "pfn"
	}
	return strings.ToLower(strings.TrimPrefix(o.String(), "OBJECT_TYPE_"))
}

func valueTypeName(t rlsv1.ValueType) string {
	switch t {
	case rlsv1.ValueType_VALUE_TYPE_INT:
		return "int"
	case rlsv1.ValueType_VALUE_TYPE_FLOAT:
		return "float"
	case rlsv1.ValueType_VALUE_TYPE_STRING:
		return "string"
	case rlsv1.ValueType_VALUE_TYPE_TIME:
		return "time"
	}
	return strings.ToLower(strings.TrimPrefix(t.String(), "VALUE_TYPE_"))
}

// valueView converts a wire value into what JSON shows: int64, float64 (a
// string for NaN and infinities, which JSON cannot hold), string, or an RFC
// 3339 string for a time; nil for an unset value.
func valueView(v *rlsv1.Value) any {
	switch x := v.GetV().(type) {
	case *rlsv1.Value_Int:
		return x.Int
	case *rlsv1.Value_Float:
		if math.IsNaN(x.Float) || math.IsInf(x.Float, 0) {
			return strconv.FormatFloat(x.Float, 'g', -1, 64)
		}
		return x.Float
	case *rlsv1.Value_String_:
		return x.String_
	case *rlsv1.Value_Time:
		return x.Time.AsTime().UTC().Format(time.RFC3339Nano)
	}
	return nil
}

// formatValue renders a valueView for a table cell.
func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		return x
	}
	return fmt.Sprint(v)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
