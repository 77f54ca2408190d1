// Package yamlcheck is the strict YAML walker that Postern's files share:
// the app catalogue (pkg/catalog) and the daemons' configuration files
// (pkg/cli). It reads exactly one YAML document, walks mappings key by key
// in document order, and reports every unknown, repeated or missing key and
// every wrong type with its line, so that a file's errors read like a
// compiler's ("catalog.yaml:12: ...") and all are reported at once.
//
// It sits below every parser of a Postern file and knows none of them: a
// parser describes a mapping as a list of Fields and receives each problem
// through a Report function.
package yamlcheck

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Classes of the problems this package finds; a parser passes them on as
// its own error classes.
var (
	// ErrSyntax means the file is not one YAML document holding a mapping.
	ErrSyntax = errors.New("syntax error")
	// ErrUnknownKey means a mapping has a key the schema does not define.
	ErrUnknownKey = errors.New("unknown key")
	// ErrType means a value has the wrong YAML type (say a list where a
	// string belongs).
	ErrType = errors.New("wrong type")
	// ErrMissing means a required key is absent.
	ErrMissing = errors.New("missing key")
	// ErrDuplicate means an id or host is used twice, or a key is repeated.
	ErrDuplicate = errors.New("duplicate")
)

// Report receives one problem: its 1-based line (0 when it has none, as in
// an empty file), its class and a message without location.
type Report func(line int, class error, msg string)

// Field is one key of a mapping. Decode receives the key's value, aliases
// resolved; adding a key to a schema is adding a Field.
type Field struct {
	// Key is the key as written in the file.
	Key string
	// Required makes the key's absence a problem (ErrMissing).
	Required bool
	// Decode decodes the value; it reports its own problems.
	Decode func(v *yaml.Node)
}

// Root returns the root mapping of the single YAML document in data, or nil
// after reporting why there is none. noun names the file in messages ("the
// catalogue"), want describes the mapping expected ("a mapping with apps").
func Root(data []byte, noun, want string, report Report) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			report(0, ErrSyntax, fmt.Sprintf("empty %s: want %s", strings.TrimPrefix(noun, "the "), want))
		} else {
			Syntax(err, report)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		Syntax(err, report)
		return nil
	default:
		report(extra.Line, ErrSyntax, fmt.Sprintf("several YAML documents: %s must be a single document", noun))
		return nil
	}
	if len(doc.Content) == 0 {
		report(0, ErrSyntax, fmt.Sprintf("empty %s: want %s", strings.TrimPrefix(noun, "the "), want))
		return nil
	}
	root := Resolve(doc.Content[0])
	switch {
	case IsNull(root):
		report(root.Line, ErrSyntax, fmt.Sprintf("empty %s: want %s", strings.TrimPrefix(noun, "the "), want))
		return nil
	case root.Kind != yaml.MappingNode:
		report(root.Line, ErrSyntax, fmt.Sprintf("%s must be %s, got %s", noun, want, Describe(root)))
		return nil
	}
	return root
}

// Syntax reports a YAML parser error, moving its "line N" into the
// location.
func Syntax(err error, report Report) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		num, text, _ := strings.Cut(rest, ": ")
		if line, convErr := strconv.Atoi(num); convErr == nil {
			report(line, ErrSyntax, "invalid YAML: "+text)
			return
		}
	}
	report(0, ErrSyntax, "invalid YAML: "+msg)
}

// Mapping decodes the mapping m field by field in document order,
// reporting a non-mapping, unknown and repeated keys, and missing required
// keys.
func Mapping(m *yaml.Node, fields []Field, report Report) {
	if m.Kind != yaml.MappingNode {
		report(m.Line, ErrType, fmt.Sprintf("got %s, want a mapping", Describe(m)))
		return
	}
	seen := make(map[string]int, len(fields))
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := Resolve(m.Content[i]), Resolve(m.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			report(k.Line, ErrType, fmt.Sprintf("key: got %s, want a string", Describe(k)))
			continue
		}
		j := slices.IndexFunc(fields, func(f Field) bool { return f.Key == k.Value })
		if j < 0 {
			report(k.Line, ErrUnknownKey, fmt.Sprintf("unknown key %q (known keys: %s)", k.Value, KeyList(fields)))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			report(k.Line, ErrDuplicate, fmt.Sprintf("key %q repeated (first at line %d)", k.Value, first))
			continue
		}
		seen[k.Value] = k.Line
		fields[j].Decode(v)
	}
	for _, f := range fields {
		if _, ok := seen[f.Key]; f.Required && !ok {
			report(m.Line, ErrMissing, fmt.Sprintf("missing required key %q", f.Key))
		}
	}
}

// KeyList returns the fields' keys, comma-separated, for messages.
func KeyList(fields []Field) string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.Key
	}
	return strings.Join(keys, ", ")
}

// Resolve follows aliases to the node they name.
func Resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// IsNull reports whether n is a null scalar.
func IsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// Describe names a node's YAML type for messages: "a list", "a string"...
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		}
		return "a value tagged " + n.ShortTag()
	}
	return "an unexpected YAML node"
}
