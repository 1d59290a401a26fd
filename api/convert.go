package api

import (
	"math"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/catalog"
)

// Limits on what one call may ask for. Bulk calls carry at most maxBulkItems
// items (a larger request is INVALID_ARGUMENT, not truncated); listing calls
// return defaultLimit results when the request says 0 and never more than
// maxLimit.
const (
	maxBulkItems = 100_000
	defaultLimit = 10_000
	maxLimit     = 100_000
)

// Conversions between rlsv1 and catalog types. Each from-proto function
// names the request field it was given in its error, so that a client learns
// which field was wrong; UNSPECIFIED and unknown enum numbers are refused.

func objectType(field string, t rlsv1.ObjectType) (catalog.ObjectType, error) {
	switch t {
	case rlsv1.ObjectType_OBJECT_TYPE_LFN:
		return catalog.LFN, nil
	case rlsv1.ObjectType_OBJECT_TYPE_PFN:
		return catalog.PFN, nil
	}
	return 0, invalidArg(field, "object type %v: want OBJECT_TYPE_LFN or OBJECT_TYPE_PFN", t)
}

func objectTypeProto(t catalog.ObjectType) rlsv1.ObjectType {
	switch t {
	case catalog.LFN:
		return rlsv1.ObjectType_OBJECT_TYPE_LFN
	case catalog.PFN:
		return rlsv1.ObjectType_OBJECT_TYPE_PFN
	}
	return rlsv1.ObjectType_OBJECT_TYPE_UNSPECIFIED
}

func valueType(field string, t rlsv1.ValueType) (catalog.ValueType, error) {
	switch t {
	case rlsv1.ValueType_VALUE_TYPE_INT:
		return catalog.TypeInt, nil
	case rlsv1.ValueType_VALUE_TYPE_FLOAT:
		return catalog.TypeFloat, nil
	case rlsv1.ValueType_VALUE_TYPE_STRING:
		return catalog.TypeString, nil
	case rlsv1.ValueType_VALUE_TYPE_TIME:
		return catalog.TypeTime, nil
	}
	return 0, invalidArg(field, "value type %v: want INT, FLOAT, STRING or TIME", t)
}

func valueTypeProto(t catalog.ValueType) rlsv1.ValueType {
	switch t {
	case catalog.TypeInt:
		return rlsv1.ValueType_VALUE_TYPE_INT
	case catalog.TypeFloat:
		return rlsv1.ValueType_VALUE_TYPE_FLOAT
	case catalog.TypeString:
		return rlsv1.ValueType_VALUE_TYPE_STRING
	case catalog.TypeTime:
		return rlsv1.ValueType_VALUE_TYPE_TIME
	}
	return rlsv1.ValueType_VALUE_TYPE_UNSPECIFIED
}

// value converts a required proto Value. Range checks beyond the proto's own
// (a Timestamp must be valid) are the catalog's.
func value(field string, v *rlsv1.Value) (catalog.Value, error) {
	switch v := v.GetV().(type) {
	case *rlsv1.Value_Int:
		return catalog.IntValue(v.Int), nil
	case *rlsv1.Value_Float:
		return catalog.FloatValue(v.Float), nil
	case *rlsv1.Value_String_:
		return catalog.StringValue(v.String_), nil
	case *rlsv1.Value_Time:
		if err := v.Time.CheckValid(); err != nil {
			return catalog.Value{}, invalidArg(field, "%v", err)
		}
		return catalog.TimeValue(v.Time.AsTime()), nil
	}
	return catalog.Value{}, invalidArg(field, "missing value")
}

func valueProto(v catalog.Value) *rlsv1.Value {
	switch v.Type {
	case catalog.TypeInt:
		return &rlsv1.Value{V: &rlsv1.Value_Int{Int: v.Int}}
	case catalog.TypeFloat:
		return &rlsv1.Value{V: &rlsv1.Value_Float{Float: v.Float}}
	case catalog.TypeString:
		return &rlsv1.Value{V: &rlsv1.Value_String_{String_: v.Str}}
	case catalog.TypeTime:
		return &rlsv1.Value{V: &rlsv1.Value_Time{Time: timestamppb.New(v.Time)}}
	}
	return &rlsv1.Value{}
}

func attrsProto(as []catalog.Attr) []*rlsv1.Attribute {
	out := make([]*rlsv1.Attribute, len(as))
	for i, a := range as {
		out[i] = attrProto(a)
	}
	return out
}

func attrProto(a catalog.Attr) *rlsv1.Attribute {
	return &rlsv1.Attribute{Name: a.Name, Type: valueTypeProto(a.Value.Type), Value: valueProto(a.Value)}
}

func attrDefProto(d catalog.AttrDef) *rlsv1.AttributeDef {
	return &rlsv1.AttributeDef{Name: d.Name, Object: objectTypeProto(d.Object), Type: valueTypeProto(d.Type)}
}

func setMode(field string, m rlsv1.SetMode) (catalog.SetMode, error) {
	switch m {
	case rlsv1.SetMode_SET_MODE_UNSPECIFIED, rlsv1.SetMode_SET_MODE_UPSERT:
		return catalog.Upsert, nil
	case rlsv1.SetMode_SET_MODE_ADD:
		return catalog.AddOnly, nil
	case rlsv1.SetMode_SET_MODE_MODIFY:
		return catalog.ModifyOnly, nil
	}
	return 0, invalidArg(field, "set mode %v: want UPSERT, ADD or MODIFY", m)
}

func writeOp(field string, op rlsv1.WriteOp) (catalog.Op, error) {
	switch op {
	case rlsv1.WriteOp_WRITE_OP_CREATE:
		return catalog.OpCreate, nil
	case rlsv1.WriteOp_WRITE_OP_ADD:
		return catalog.OpAdd, nil
	case rlsv1.WriteOp_WRITE_OP_DELETE:
		return catalog.OpDelete, nil
	}
	return 0, invalidArg(field, "write op %v: want CREATE, ADD or DELETE", op)
}

func searchOp(field string, op rlsv1.SearchOp) (catalog.SearchOp, error) {
	switch op {
	case rlsv1.SearchOp_SEARCH_OP_EQ:
		return catalog.OpEQ, nil
	case rlsv1.SearchOp_SEARCH_OP_NE:
		return catalog.OpNE, nil
	case rlsv1.SearchOp_SEARCH_OP_LT:
		return catalog.OpLT, nil
	case rlsv1.SearchOp_SEARCH_OP_LE:
		return catalog.OpLE, nil
	case rlsv1.SearchOp_SEARCH_OP_GT:
		return catalog.OpGT, nil
	case rlsv1.SearchOp_SEARCH_OP_GE:
		return catalog.OpGE, nil
	case rlsv1.SearchOp_SEARCH_OP_BETWEEN:
		return catalog.OpBetween, nil
	case rlsv1.SearchOp_SEARCH_OP_LIKE:
		return catalog.OpLike, nil
	}
	return 0, invalidArg(field, "search op %v: want EQ, NE, LT, LE, GT, GE, BETWEEN or LIKE", op)
}

// page converts a request's offset and limit as the package function page
// does, and caps the limit at the budget's items.
func (b *replyBudget) page(offset, limit uint64) (int, int, error) {
	o, l, err := page(offset, limit)
	return o, int(min(int64(l), b.lim.maxItems)), err
}

// pageBytes is the catalog's MaxBytes for a page: what is left of the
// budget, less a little for the reply's other fields, and at least 1 (a
// page holds at least one result). The catalog counts a result as no less
// than the reply's charge for it (mappingOverhead, hitOverhead).
func (b *replyBudget) pageBytes() int {
	return int(max(1, b.lim.maxBytes-b.bytes.Load()-1024))
}

// page converts a request's offset and limit: limit 0 becomes defaultLimit
// and anything above maxLimit becomes maxLimit.
func page(offset, limit uint64) (int, int, error) {
	if offset > math.MaxInt {
		return 0, 0, invalidArg("offset", "%d is too large", offset)
	}
	switch {
	case limit == 0:
		limit = defaultLimit
	case limit > maxLimit:
		limit = maxLimit
	}
	return int(offset), int(limit), nil
}

// checkBulk refuses a bulk request of more than maxBulkItems items.
func checkBulk(field string, n int) error {
	if n > maxBulkItems {
		return invalidArg(field, "%d items, more than the %d one call may carry", n, maxBulkItems)
	}
	return nil
}
