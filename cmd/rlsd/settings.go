package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// Settings are declared once, in config.bind, as one line each:
//
//	b.flag(&c.HTTPListen, "http-listen", "help text")
//
// From that line come the flag (--http-listen), the environment variable
// (RLSD_HTTP_LISTEN: the name upper-cased, "-" as "_") and the key of the
// configuration file (http-listen:). Structured settings that only a file
// can express (lists of targets, routes, rules) are declared with
// b.fileOnly. The default is the field's value in defaultConfig.
//
// How each source parses a value: the command line through pflag (lists
// are comma-separated, repeatable), the environment as below (lists are
// comma-separated, blanks trimmed, empty items dropped; integers decimal;
// booleans as strconv.ParseBool), the file through YAML into the field's
// type (lists as a YAML list or one comma-separated string).

// envPrefix starts the environment variable of every setting.
const envPrefix = "RLSD_"

// envName is the environment variable of the setting called name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// binding is one declared setting: its name and the config field it sets.
type binding struct {
	name string
	ptr  any  // a pointer into one config value
	flag bool // false: a file-only setting, with no flag and no variable
}

// binder collects the settings of one config value as config.bind declares
// them, and registers their flags when it has a flag set. Not safe for
// concurrent use.
type binder struct {
	fs       *pflag.FlagSet // nil: collect only (to read a file, to compare)
	settings []binding
}

// bindings returns the settings of c, pointing into c.
func (c *config) bindings() []binding {
	b := &binder{}
	c.bind(b)
	return b.settings
}

// flag declares a setting with a flag, a variable and a file key. p points
// to its field, whose value is the default shown in help. It panics on a
// field type the binder cannot parse: a programming error, which any test
// of the command finds.
func (b *binder) flag(p any, name, usage string) {
	b.settings = append(b.settings, binding{name: name, ptr: p, flag: true})
	if b.fs == nil {
		return
	}
	switch p := p.(type) {
	case *string:
		b.fs.StringVar(p, name, *p, usage)
	case *bool:
		b.fs.BoolVar(p, name, *p, usage)
	case *int:
		b.fs.IntVar(p, name, *p, usage)
	case *int64:
		b.fs.Int64Var(p, name, *p, usage)
	case *uint64:
		b.fs.Uint64Var(p, name, *p, usage)
	case *float64:
		b.fs.Float64Var(p, name, *p, usage)
	case *time.Duration:
		b.fs.DurationVar(p, name, *p, usage)
	case *roleList:
		b.fs.StringSliceVar((*[]string)(p), name, *p, usage)
	case *pathList:
		b.fs.StringSliceVar((*[]string)(p), name, *p, usage)
	default:
		panic(fmt.Sprintf("setting %s: no flag for a field of type %T", name, p))
	}
}

// fileOnly declares a setting that only the configuration file sets.
func (b *binder) fileOnly(p any, name string) {
	b.settings = append(b.settings, binding{name: name, ptr: p})
}

// setFromEnv parses s, the value of the setting's environment variable,
// into its field. The syntax is the one rlsd has always read from the
// environment (see the comment at the top of this file).
func (s binding) setFromEnv(v string) (err error) {
	switch p := s.ptr.(type) {
	case *string:
		*p = v
	case *bool:
		*p, err = strconv.ParseBool(v)
	case *int:
		*p, err = strconv.Atoi(v)
	case *int64:
		*p, err = strconv.ParseInt(v, 10, 64)
	case *uint64:
		*p, err = strconv.ParseUint(v, 10, 64)
	case *float64:
		*p, err = strconv.ParseFloat(v, 64)
	case *time.Duration:
		*p, err = time.ParseDuration(v)
	case *roleList:
		*p = splitRoles(v)
	case *pathList:
		*p = splitPaths(v)
	default:
		panic(fmt.Sprintf("setting %s: no environment syntax for a field of type %T", s.name, p))
	}
	return err
}

// value is the setting's current value.
func (s binding) value() reflect.Value { return reflect.ValueOf(s.ptr).Elem() }

// merge sets c from the configuration file at path (if not empty), then from
// the environment, then from the flags set in fs, whose values are those of
// cmdline. c starts as the defaults; the file sets the keys it has, the
// environment the variables that are set, and the command line the flags
// that were given. Errors name the file, key or variable.
func (c *config) merge(path string, getenv func(string) (string, bool), fs *pflag.FlagSet, cmdline *config) error {
	settings := c.bindings()
	if path != "" {
		if err := loadConfigFile(path, settings); err != nil {
			return usageError{err}
		}
	}
	for _, s := range settings {
		if !s.flag {
			continue
		}
		if v, ok := getenv(envName(s.name)); ok {
			if err := s.setFromEnv(v); err != nil {
				return usageErrorf("%s=%q: %v", envName(s.name), v, err)
			}
		}
	}
	given := cmdline.bindings()
	for i, s := range settings {
		if s.flag && fs.Changed(s.name) {
			s.value().Set(given[i].value())
		}
	}
	return nil
}

// loadConfigFile reads the YAML configuration file at path into the fields
// of settings. It is strict: a key that is no setting, and an unknown field
// inside a structured setting, are errors that name them and their line.
func loadConfigFile(path string, settings []binding) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); errors.Is(err, io.EOF) {
		return nil // an empty file
	} else if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if err := checkKeys(&doc, settings); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	// Decode into a struct made for the purpose, with one field per
	// setting tagged with its name and holding its current value, so that
	// YAML reads every value into its field's type exactly as it would
	// into a hand-written struct; then copy the fields back.
	fields := make([]reflect.StructField, len(settings))
	for i, s := range settings {
		fields[i] = reflect.StructField{
			Name: fmt.Sprintf("S%d", i),
			Type: s.value().Type(),
			Tag:  reflect.StructTag(fmt.Sprintf("yaml:%q", s.name)),
		}
	}
	file := reflect.New(reflect.StructOf(fields)).Elem()
	for i, s := range settings {
		file.Field(i).Set(s.value())
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(file.Addr().Interface()); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	for i, s := range settings {
		s.value().Set(file.Field(i))
	}
	return nil
}

// checkKeys returns an error naming the first top-level key of the YAML
// document doc that is not a setting, and the line it is on.
func checkKeys(doc *yaml.Node, settings []binding) error {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil // not a mapping: decoding says what is wrong
	}
	known := func(name string) bool {
		return slices.ContainsFunc(settings, func(s binding) bool { return s.name == name })
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if known(k.Value) {
			continue
		}
		hint := ""
		if alt := strings.ReplaceAll(k.Value, "_", "-"); known(alt) {
			hint = fmt.Sprintf(" (did you mean %q?)", alt)
		}
		return fmt.Errorf("line %d: unknown key %q%s; the keys are the flags' names, without --", k.Line, k.Value, hint)
	}
	return nil
}

// changedSettings names the settings that differ between a and b and that
// are not among applied, in the order config.bind declares them.
func changedSettings(a, b config, applied []string) []string {
	var out []string
	sb := b.bindings()
	for i, s := range a.bindings() {
		if !slices.Contains(applied, s.name) && !reflect.DeepEqual(s.value().Interface(), sb[i].value().Interface()) {
			out = append(out, s.name)
		}
	}
	return out
}
