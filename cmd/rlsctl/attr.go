package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/solar-archive/rls/api/rlsv1"
)

// newLRCAttrCommand is the "lrc attr" group: typed attributes of LFNs and PFNs.
func newLRCAttrCommand(g *globalOptions) *cobra.Command {
	return groupCommand("attr", "Typed attributes of LFNs and PFNs",
		newAttrDefineCommand(g),
		newAttrUndefineCommand(g),
		newAttrListCommand(g),
		newAttrSetCommand(g),
		newAttrRemoveCommand(g),
		newAttrGetCommand(g),
		newAttrSearchCommand(g),
	)
}

// objectFlag binds --object lfn|pfn to f; required makes it mandatory.
func objectFlag(cmd *cobra.Command, f *enumFlag, required bool) {
	*f = newEnumFlag("", "lfn", "pfn")
	cmd.Flags().Var(f, "object", "object the attribute belongs to: "+f.choices())
	_ = cmd.RegisterFlagCompletionFunc("object", f.complete)
	if required {
		_ = cmd.MarkFlagRequired("object")
	}
}

func objectType(f enumFlag) rlsv1.ObjectType {
	switch f.String() {
	case "lfn":
		return rlsv1.ObjectType_OBJECT_TYPE_LFN
	case "pfn":
		return rlsv1.ObjectType_OBJECT_TYPE_PFN
	}
	return rlsv1.ObjectType_OBJECT_TYPE_UNSPECIFIED
}

type attrDefineOptions struct {
	object, typ enumFlag
}

func newAttrDefineCommand(g *globalOptions) *cobra.Command {
	o := &attrDefineOptions{typ: newEnumFlag("", "int", "float", "string", "time")}
	cmd := &cobra.Command{
		Use:   "define NAME --object lfn|pfn --type int|float|string|time",
		Short: "Declare an attribute name with a value type",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkNames("attribute name", args[0]); err != nil {
				return err
			}
			return g.withConn(func(c *conn) error {
				ctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := c.catalog.DefineAttribute(ctx, &rlsv1.DefineAttributeRequest{Def: &rlsv1.AttributeDef{
					Name: args[0], Object: objectType(o.object), Type: valueType(o.typ.String()),
				}})
				if err != nil {
					return err
				}
				return g.printer().print(writeResult{OK: true, Op: "define", Seq: resp.GetSeq(),
					done: fmt.Sprintf("defined %s attribute %s (%s)", o.object.String(), cell(args[0]), o.typ.String())})
			})
		},
	}
	objectFlag(cmd, &o.object, true)
	cmd.Flags().Var(&o.typ, "type", "value type: "+o.typ.choices())
	_ = cmd.RegisterFlagCompletionFunc("type", o.typ.complete)
	_ = cmd.MarkFlagRequired("type")
	return cmd
}

func valueType(s string) rlsv1.ValueType {
	switch s {
	case "int":
		return rlsv1.ValueType_VALUE_TYPE_INT
	case "float":
		return rlsv1.ValueType_VALUE_TYPE_FLOAT
	case "string":
		return rlsv1.ValueType_VALUE_TYPE_STRING
	case "time":
		return rlsv1.ValueType_VALUE_TYPE_TIME
	}
	return rlsv1.ValueType_VALUE_TYPE_UNSPECIFIED
}

type attrUndefineOptions struct {
	object enumFlag
	clear  bool
}

func newAttrUndefineCommand(g *globalOptions) *cobra.Command {
	o := &attrUndefineOptions{}
	cmd := &cobra.Command{
		Use:   "undefine NAME --object lfn|pfn [--clear]",
		Short: "Remove an attribute definition (with --clear, also its values)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkNames("attribute name", args[0]); err != nil {
				return err
			}
			return g.withConn(func(c *conn) error {
				ctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := c.catalog.UndefineAttribute(ctx, &rlsv1.UndefineAttributeRequest{
					Name: args[0], Object: objectType(o.object), ClearValues: o.clear,
				})
				if err != nil {
					return err
				}
				return g.printer().print(writeResult{OK: true, Op: "undefine", Seq: resp.GetSeq(),
					done: fmt.Sprintf("undefined %s attribute %s", o.object.String(), cell(args[0]))})
			})
		},
	}
	objectFlag(cmd, &o.object, true)
	cmd.Flags().BoolVar(&o.clear, "clear", false, "also remove every value of the attribute (otherwise values make it fail)")
	return cmd
}

type attrListOptions struct {
	object enumFlag
}

func newAttrListCommand(g *globalOptions) *cobra.Command {
	o := &attrListOptions{}
	cmd := &cobra.Command{
		Use:   "list [--object lfn|pfn]",
		Short: "List attribute definitions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withConn(func(c *conn) error {
				ctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := c.catalog.ListAttributes(ctx, &rlsv1.ListAttributesRequest{Object: objectType(o.object)})
				if err != nil {
					return err
				}
				r := make(attrDefsResult, 0, len(resp.GetDefs()))
				for _, d := range resp.GetDefs() {
					r = append(r, attrDefView{Name: d.GetName(), Object: objectName(d.GetObject()), Type: valueTypeName(d.GetType())})
				}
				return g.printer().print(r)
			})
		},
	}
	objectFlag(cmd, &o.object, false)
	return cmd
}

// attrType fetches the definition of attribute name for obj to learn its
// value type, in an RPC of its own under --timeout. An undefined attribute
// is a NOT_FOUND (exit 3).
func attrType(parent context.Context, g *globalOptions, c *conn, obj rlsv1.ObjectType, name string) (rlsv1.ValueType, error) {
	ctx, cancel := g.rpcContext(parent)
	defer cancel()
	resp, err := c.catalog.ListAttributes(ctx, &rlsv1.ListAttributesRequest{Object: obj})
	if err != nil {
		return 0, err
	}
	for _, d := range resp.GetDefs() {
		if d.GetName() == name && d.GetObject() == obj {
			return d.GetType(), nil
		}
	}
	return 0, &exitError{code: exitNotFound, err: fmt.Errorf("attribute %q is not defined for %ss", name, objectName(obj))}
}

// parseValue parses s as a value of type t: a decimal int64, a float, any
// string, or an RFC 3339 time. Errors name the attribute and are usage
// errors.
func parseValue(t rlsv1.ValueType, attr, s string) (*rlsv1.Value, error) {
	bad := func(err error) error {
		return usageErrorf("value %q for attribute %q (%s): %v", s, attr, valueTypeName(t), err)
	}
	switch t {
	case rlsv1.ValueType_VALUE_TYPE_INT:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, bad(err.(*strconv.NumError).Err)
		}
		return &rlsv1.Value{V: &rlsv1.Value_Int{Int: n}}, nil
	case rlsv1.ValueType_VALUE_TYPE_FLOAT:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, bad(err.(*strconv.NumError).Err)
		}
		return &rlsv1.Value{V: &rlsv1.Value_Float{Float: f}}, nil
	case rlsv1.ValueType_VALUE_TYPE_STRING:
		if !utf8.ValidString(s) {
			return nil, bad(fmt.Errorf("not valid UTF-8"))
		}
		return &rlsv1.Value{V: &rlsv1.Value_String_{String_: s}}, nil
	case rlsv1.ValueType_VALUE_TYPE_TIME:
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, bad(fmt.Errorf("not an RFC 3339 time such as 2026-01-02T15:04:05Z"))
		}
		return &rlsv1.Value{V: &rlsv1.Value_Time{Time: timestamppb.New(tm)}}, nil
	}
	return nil, fmt.Errorf("attribute %q has a value type this rlsctl does not know (%v)", attr, t)
}

type attrSetOptions struct {
	object, mode enumFlag
}

func newAttrSetCommand(g *globalOptions) *cobra.Command {
	o := &attrSetOptions{mode: newEnumFlag("upsert", "upsert", "add", "modify")}
	cmd := &cobra.Command{
		Use:   "set OBJECT NAME VALUE --object lfn|pfn [--mode upsert|add|modify]",
		Short: "Set an attribute value on an LFN or PFN",
		Long: `Set attribute NAME of the LFN or PFN OBJECT to VALUE. VALUE is read by the
attribute's type: int (decimal), float, string, or time (RFC 3339, for
example 2026-01-02T15:04:05Z).

--mode upsert sets the value whether or not one exists; add fails with exit
status 4 if the object already has a value; modify fails with 3 if it has none.`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			objName, name, raw := args[0], args[1], args[2]
			obj := objectType(o.object)
			if err := checkNames(o.object.String(), objName, "attribute name", name); err != nil {
				return err
			}
			return g.withConn(func(c *conn) error {
				t, err := attrType(cmd.Context(), g, c, obj, name)
				if err != nil {
					return err
				}
				v, err := parseValue(t, name, raw)
				if err != nil {
					return err
				}
				ctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := c.catalog.SetAttribute(ctx, &rlsv1.SetAttributeRequest{
					Object: obj, ObjectName: objName, Name: name, Value: v, Mode: setMode(o.mode.String()),
				})
				if err != nil {
					return err
				}
				return g.printer().print(writeResult{OK: true, Op: "set", Seq: resp.GetSeq(),
					done: fmt.Sprintf("set %s of %s %s to %s", cell(name), o.object.String(), cell(objName), formatValue(valueView(v)))})
			})
		},
	}
	objectFlag(cmd, &o.object, true)
	cmd.Flags().Var(&o.mode, "mode", "upsert (always), add (only if unset) or modify (only if set)")
	_ = cmd.RegisterFlagCompletionFunc("mode", o.mode.complete)
	return cmd
}

func setMode(s string) rlsv1.SetMode {
	switch s {
	case "add":
		return rlsv1.SetMode_SET_MODE_ADD
	case "modify":
		return rlsv1.SetMode_SET_MODE_MODIFY
	}
	return rlsv1.SetMode_SET_MODE_UPSERT
}

type attrObjectOptions struct {
	object enumFlag
}

func newAttrRemoveCommand(g *globalOptions) *cobra.Command {
	o := &attrObjectOptions{}
	cmd := &cobra.Command{
		Use:   "remove OBJECT NAME --object lfn|pfn",
		Short: "Remove an attribute value from an LFN or PFN",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			objName, name := args[0], args[1]
			if err := checkNames(o.object.String(), objName, "attribute name", name); err != nil {
				return err
			}
			return g.withConn(func(c *conn) error {
				ctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := c.catalog.RemoveAttribute(ctx, &rlsv1.RemoveAttributeRequest{
					Object: objectType(o.object), ObjectName: objName, Name: name,
				})
				if err != nil {
					return err
				}
				return g.printer().print(writeResult{OK: true, Op: "remove", Seq: resp.GetSeq(),
					done: fmt.Sprintf("removed %s from %s %s", cell(name), o.object.String(), cell(objName))})
			})
		},
	}
	objectFlag(cmd, &o.object, true)
	return cmd
}

func newAttrGetCommand(g *globalOptions) *cobra.Command {
	o := &attrObjectOptions{}
	cmd := &cobra.Command{
		Use:   "get OBJECT [NAME...] --object lfn|pfn",
		Short: "Show the attribute values of an LFN or PFN (all, or those named)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			objName, names := args[0], args[1:]
			if err := checkNames(o.object.String(), objName); err != nil {
				return err
			}
			for _, n := range names {
				if err := checkNames("attribute name", n); err != nil {
					return err
				}
			}
			return g.withConn(func(c *conn) error {
				ctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := c.catalog.GetAttributes(ctx, &rlsv1.GetAttributesRequest{
					Object: objectType(o.object), ObjectName: objName, Names: names,
				})
				if err != nil {
					return err
				}
				r := attrValuesResult{Object: o.object.String(), ObjectName: objName,
					Attributes: make([]attrView, 0, len(resp.GetAttributes()))}
				for _, a := range resp.GetAttributes() {
					r.Attributes = append(r.Attributes, attrView{Name: a.GetName(), Type: valueTypeName(a.GetType()), Value: valueView(a.GetValue())})
				}
				return g.printer().print(r)
			})
		},
	}
	objectFlag(cmd, &o.object, true)
	return cmd
}

type attrSearchOptions struct {
	object        enumFlag
	offset, limit uint64
}

func newAttrSearchCommand(g *globalOptions) *cobra.Command {
	o := &attrSearchOptions{}
	cmd := &cobra.Command{
		Use:   "search NAME OP VALUE [VALUE2] --object lfn|pfn",
		Short: "Find LFNs or PFNs by attribute value",
		Long: `Find the LFNs or PFNs whose attribute NAME satisfies OP VALUE, ordered by
(value, name). OP is one of = != < <= > >= between like (quote < and > from
the shell). between takes VALUE2 and is inclusive at both ends; like matches
string values against a glob ('*', '?'). Values are read by the attribute's
type, as in "attr set".`,
		Args: cobra.RangeArgs(3, 4),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkNames("attribute name", name); err != nil {
				return err
			}
			op, err := searchOp(args[1])
			if err != nil {
				return err
			}
			if (op == rlsv1.SearchOp_SEARCH_OP_BETWEEN) != (len(args) == 4) {
				return usageErrorf("between takes VALUE and VALUE2; other operators take VALUE alone")
			}
			obj := objectType(o.object)
			return g.withConn(func(c *conn) error {
				t, err := attrType(cmd.Context(), g, c, obj, name)
				if err != nil {
					return err
				}
				if op == rlsv1.SearchOp_SEARCH_OP_LIKE {
					t = rlsv1.ValueType_VALUE_TYPE_STRING // a glob; the server checks the attribute is a string
				}
				req := &rlsv1.SearchAttributeRequest{Object: obj, Name: name, Op: op, Offset: o.offset, Limit: o.limit}
				if req.Value, err = parseValue(t, name, args[2]); err != nil {
					return err
				}
				if len(args) == 4 {
					if req.Value2, err = parseValue(t, name, args[3]); err != nil {
						return err
					}
				}
				ctx, cancel := g.rpcContext(cmd.Context())
				defer cancel()
				resp, err := c.catalog.SearchAttribute(ctx, req)
				if err != nil {
					return err
				}
				r := searchResult{Hits: make([]searchHitView, 0, len(resp.GetHits())), More: resp.GetMore(), object: o.object.String()}
				for _, h := range resp.GetHits() {
					r.Hits = append(r.Hits, searchHitView{ObjectName: h.GetObjectName(), Value: valueView(h.GetValue())})
				}
				if err := g.printer().print(r); err != nil {
					return err
				}
				if r.More && !g.printer().json {
					fmt.Fprintf(g.stderr, "rlsctl: more hits exist; use --offset %d\n", o.offset+uint64(len(r.Hits)))
				}
				return nil
			})
		},
	}
	objectFlag(cmd, &o.object, true)
	cmd.Flags().Uint64Var(&o.offset, "offset", 0, "skip this many hits")
	cmd.Flags().Uint64Var(&o.limit, "limit", 0, "return at most this many hits (0: server default)")
	return cmd
}

// searchOp parses a search operator; the word forms (eq, ne, lt, le, gt, ge)
// are accepted too, as they need no quoting.
func searchOp(s string) (rlsv1.SearchOp, error) {
	switch strings.ToLower(s) {
	case "=", "==", "eq":
		return rlsv1.SearchOp_SEARCH_OP_EQ, nil
	case "!=", "ne":
		return rlsv1.SearchOp_SEARCH_OP_NE, nil
	case "<", "lt":
		return rlsv1.SearchOp_SEARCH_OP_LT, nil
	case "<=", "le":
		return rlsv1.SearchOp_SEARCH_OP_LE, nil
	case ">", "gt":
		return rlsv1.SearchOp_SEARCH_OP_GT, nil
	case ">=", "ge":
		return rlsv1.SearchOp_SEARCH_OP_GE, nil
	case "between":
		return rlsv1.SearchOp_SEARCH_OP_BETWEEN, nil
	case "like":
		return rlsv1.SearchOp_SEARCH_OP_LIKE, nil
	}
	return 0, usageErrorf("unknown operator %q: want one of = != < <= > >= between like", s)
}
