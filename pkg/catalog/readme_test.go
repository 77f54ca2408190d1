package catalog

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestReadmeKeysInExample: every catalogue key the README names (as
// `key` or `key: value`) is documented in the example catalogue. The keys
// the parser knows are read from its own "known keys" errors, provoked by
// an unknown key in every mapping of the example.
func TestReadmeKeysInExample(t *testing.T) {
	example, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(example, &doc); err != nil {
		t.Fatal(err)
	}
	inExample := map[string]bool{}
	known := map[string]bool{}
	knownRE := regexp.MustCompile(`known keys: ([a-z_, ]+)\)`)
	var maps []*yaml.Node
	data := map[*yaml.Node]bool{} // mappings whose keys are data (claim names), not catalogue keys
	walk(&doc, func(n *yaml.Node) {
		if n.Kind != yaml.MappingNode || data[n] {
			return
		}
		maps = append(maps, n)
		for i := 0; i < len(n.Content); i += 2 {
			inExample[n.Content[i].Value] = true
			if freeForm[n.Content[i].Value] {
				data[n.Content[i+1]] = true
			}
		}
	})
	if len(data) == 0 {
		t.Fatal("the example has no claim conditions: the free-form exclusion is untested")
	}
	for _, m := range maps {
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "zz_unknown"}, &yaml.Node{Kind: yaml.ScalarNode, Value: "1"})
		b, err := yaml.Marshal(&doc)
		m.Content = m.Content[:len(m.Content)-2]
		if err != nil {
			t.Fatal(err)
		}
		_, perr := Parse("example.yaml", b)
		if perr == nil {
			t.Fatalf("an unknown key in the mapping at line %d was accepted", m.Line)
		}
		for _, sub := range knownRE.FindAllStringSubmatch(perr.Error(), -1) {
			for _, k := range strings.Split(sub[1], ", ") {
				known[k] = true
			}
		}
	}
	if !known["apps"] || !known["host"] || !known["pin_region"] {
		t.Fatalf("known keys %v: the extraction is broken", known)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, m := range regexp.MustCompile("`([a-z][a-z0-9_]*)(:[^`]*)?`").FindAllStringSubmatch(string(readme), -1) {
		if k := m[1]; known[k] && !inExample[k] && !slices.Contains(missing, k) {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Errorf("README names catalogue keys that testdata/example.yaml does not document: %v", missing)
	}
}

// freeForm names the catalogue keys whose values are mappings of data
// rather than of catalogue keys.
var freeForm = map[string]bool{"claims": true}

func walk(n *yaml.Node, f func(*yaml.Node)) {
	f(n)
	for _, c := range n.Content {
		walk(c, f)
	}
}
