package catalog

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// schemaNode is the part of a JSON Schema this test reads.
type schemaNode struct {
	Ref        string                 `json:"$ref"`
	Type       string                 `json:"type"`
	Properties map[string]*schemaNode `json:"properties"`
	Items      *schemaNode            `json:"items"`
	Enum       []any                  `json:"enum"`
	Pattern    string                 `json:"pattern"`
	Additional json.RawMessage        `json:"additionalProperties"` // false (closed) or the schema of every value (a map)
	Required   []string               `json:"required"`
	Defs       map[string]*schemaNode `json:"$defs"`
}

// TestSchemaMatchesExample checks catalog.schema.json against the
// documented example, which names every key the parser knows: every key of
// the example is in the schema at the same place with a matching type,
// enum value and pattern; every property of the schema is used by the
// example (so the schema invents nothing); every object is closed
// (additionalProperties false, as the parser refuses unknown keys) unless
// it is a map of free keys (workload claim conditions); and
// every enum is exactly the parser's set of values.
func TestSchemaMatchesExample(t *testing.T) {
	raw, err := os.ReadFile("catalog.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var root schemaNode
	if err := json.Unmarshal(raw, &root); err != nil {
		t.Fatalf("the schema is not JSON: %v", err)
	}
	resolve := func(s *schemaNode) *schemaNode {
		if s != nil && s.Ref != "" {
			return root.Defs[strings.TrimPrefix(s.Ref, "#/$defs/")]
		}
		return s
	}
	example, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(example, &doc); err != nil {
		t.Fatal(err)
	}
	used := map[*schemaNode]map[string]bool{}
	var walk func(path string, n *yaml.Node, s *schemaNode)
	walk = func(path string, n *yaml.Node, s *schemaNode) {
		s = resolve(s)
		if s == nil {
			t.Errorf("%s (line %d): not in the schema", path, n.Line)
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			var values *schemaNode // a map's value schema (free keys, such as claim names)
			switch a := strings.TrimSpace(string(s.Additional)); {
			case s.Type != "object":
				t.Errorf("%s: schema type %q, want an object", path, s.Type)
			case a == "false":
			case strings.HasPrefix(a, "{") && len(s.Properties) == 0:
				if err := json.Unmarshal(s.Additional, &values); err != nil {
					t.Fatalf("%s: additionalProperties: %v", path, err)
				}
				for i := 0; i+1 < len(n.Content); i += 2 {
					walk(path+"."+n.Content[i].Value, n.Content[i+1], values)
				}
				return
			default:
				t.Errorf("%s: want a closed object (additionalProperties false) or a map (a value schema and no properties)", path)
			}
			if used[s] == nil {
				used[s] = map[string]bool{}
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				used[s][k] = true
				walk(path+"."+k, n.Content[i+1], s.Properties[k])
			}
		case yaml.SequenceNode:
			if s.Type != "array" || s.Items == nil {
				t.Errorf("%s: schema type %q, want an array", path, s.Type)
				return
			}
			for _, c := range n.Content {
				walk(path+"[]", c, s.Items)
			}
		case yaml.ScalarNode:
			switch {
			case len(s.Enum) > 0:
				if !slices.Contains(s.Enum, any(n.Value)) {
					t.Errorf("%s: %q is not among the schema's %v", path, n.Value, s.Enum)
				}
			case s.Type == "boolean":
				if n.Tag != "!!bool" {
					t.Errorf("%s: %q is not a boolean", path, n.Value)
				}
			case s.Type == "string":
				if s.Pattern != "" && !regexp.MustCompile(s.Pattern).MatchString(n.Value) {
					t.Errorf("%s: %q does not match the schema's pattern %s", path, n.Value, s.Pattern)
				}
			default:
				t.Errorf("%s: a scalar where the schema wants %q", path, s.Type)
			}
		}
	}
	walk("", doc.Content[0], &root)
	var unused []string
	var each func(name string, s *schemaNode)
	each = func(name string, s *schemaNode) {
		if s == nil {
			return
		}
		for k, p := range s.Properties {
			if !used[s][k] {
				unused = append(unused, name+"."+k)
			}
			each(name+"."+k, p)
		}
		each(name+"[]", s.Items)
	}
	each("", &root)
	for name, d := range root.Defs {
		each("$defs."+name, d)
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("schema properties the example never uses (document them in example.yaml or drop them): %v", unused)
	}
	enums := map[string][]any{
		"preauth":     {string(PreAuthPassthrough), string(PreAuthEntra), string(PreAuthOIDC)},
		"path_case":   {string(PathCaseSensitive), string(PathCaseInsensitive)},
		"host_header": {string(HostHeaderInternal), string(HostHeaderExternal)},
		"kind":        {string(KindWeb), string(KindTCP)},
	}
	app := root.Properties["apps"].Items
	for k, want := range enums {
		if got := app.Properties[k].Enum; !slices.Equal(got, want) {
			t.Errorf("apps[].%s enum %v, want the parser's %v", k, got, want)
		}
	}
}
