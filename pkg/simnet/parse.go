package simnet

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/postern/postern/pkg/yamlcheck"
)

// fileSpec is a decoded matrix file before references are resolved.
type fileSpec struct {
	regions   []regionSpec
	links     []linkSpec
	linksLine int // line of the links key (or 1), where missing pairs are reported
	sources   []string
}

type regionSpec struct {
	name  string
	intra time.Duration
	line  int
}

type linkSpec struct {
	a, b string
	link Link
	line int
}

// specParser collects problems while walking the YAML node tree.
type specParser struct {
	problems []error
}

func (p *specParser) bad(n *yaml.Node, format string, args ...any) {
	p.problems = append(p.problems, fmt.Errorf("line %d: "+format, append([]any{n.Line}, args...)...))
}

// mapping decodes a mapping node with the shared strict walker
// (pkg/yamlcheck): unknown, repeated and missing keys are problems.
func (p *specParser) mapping(n *yaml.Node, where string, fields []yamlcheck.Field) {
	yamlcheck.Mapping(n, fields, func(line int, _ error, msg string) {
		p.problems = append(p.problems, fmt.Errorf("line %d: %s: %s", line, where, msg))
	})
}

// sequence calls each for every item of a sequence node.
func (p *specParser) sequence(n *yaml.Node, where string, each func(i int, item *yaml.Node)) {
	if n.Kind != yaml.SequenceNode {
		p.bad(n, "%s: want a list", where)
		return
	}
	for i, item := range n.Content {
		each(i, item)
	}
}

func (p *specParser) str(n *yaml.Node, where string) string {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" || n.Value == "" {
		p.bad(n, "%s: want a non-empty string", where)
		return ""
	}
	return n.Value
}

// number decodes a finite number in [min, max) (max ignored when +Inf).
func (p *specParser) number(n *yaml.Node, where string, lo, hi float64) float64 {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		p.bad(n, "%s: want a number, got %q", where, n.Value)
		return 0
	}
	f, err := strconv.ParseFloat(n.Value, 64)
	switch {
	case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
		p.bad(n, "%s: want a finite number, got %q", where, n.Value)
		return 0
	case f < lo:
		p.bad(n, "%s: %v is below %v", where, f, lo)
		return 0
	case !math.IsInf(hi, 1) && f >= hi:
		p.bad(n, "%s: %v must be below %v", where, f, hi)
		return 0
	}
	return f
}

// millis decodes a non-negative number of milliseconds.
func (p *specParser) millis(n *yaml.Node, where string) time.Duration {
	f := p.number(n, where, 0, math.Inf(1))
	if f > float64(24*time.Hour/time.Millisecond) {
		p.bad(n, "%s: %v ms is more than a day", where, f)
		return 0
	}
	return time.Duration(math.Round(f * float64(time.Millisecond)))
}

// decodeSpec parses data into a fileSpec, reporting every structural problem.
func decodeSpec(data []byte) (*fileSpec, []error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, []error{err} // yaml.v3 syntax errors carry "line N"
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, []error{fmt.Errorf("line 1: empty file")}
	}
	p := &specParser{}
	s := &fileSpec{linksLine: 1}
	root := doc.Content[0]
	p.mapping(root, "matrix", []yamlcheck.Field{
		{Key: "regions", Required: true, Decode: func(v *yaml.Node) {
			p.sequence(v, "regions", func(i int, item *yaml.Node) { s.regions = append(s.regions, p.region(i, item)) })
			if v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
				p.bad(v, "regions: want at least one region")
			}
		}},
		{Key: "links", Decode: func(v *yaml.Node) {
			s.linksLine = v.Line
			p.sequence(v, "links", func(i int, item *yaml.Node) { s.links = append(s.links, p.link(i, item)) })
		}},
		{Key: "sources", Decode: func(v *yaml.Node) {
			p.sequence(v, "sources", func(i int, item *yaml.Node) {
				s.sources = append(s.sources, p.str(item, fmt.Sprintf("sources[%d]", i)))
			})
		}},
	})
	return s, p.problems
}

func (p *specParser) region(i int, n *yaml.Node) regionSpec {
	r := regionSpec{line: n.Line}
	where := fmt.Sprintf("regions[%d]", i)
	p.mapping(n, where, []yamlcheck.Field{
		{Key: "name", Required: true, Decode: func(v *yaml.Node) { r.name = p.str(v, where+".name") }},
		{Key: "intra_rtt_ms", Decode: func(v *yaml.Node) { r.intra = p.millis(v, where+".intra_rtt_ms") }},
	})
	return r
}

func (p *specParser) link(i int, n *yaml.Node) linkSpec {
	l := linkSpec{line: n.Line}
	where := fmt.Sprintf("links[%d]", i)
	p.mapping(n, where, []yamlcheck.Field{
		{Key: "between", Required: true, Decode: func(v *yaml.Node) {
			if v.Kind != yaml.SequenceNode || len(v.Content) != 2 {
				p.bad(v, "%s.between: want a list of two region names", where)
				return
			}
			l.a = p.str(v.Content[0], where+".between[0]")
			l.b = p.str(v.Content[1], where+".between[1]")
			if l.a != "" && l.a == l.b {
				p.bad(v, "%s.between: a link joins two different regions, got %q twice (use intra_rtt_ms)", where, l.a)
			}
		}},
		{Key: "rtt_ms", Required: true, Decode: func(v *yaml.Node) { l.link.RTT = p.millis(v, where+".rtt_ms") }},
		{Key: "jitter_ms", Decode: func(v *yaml.Node) { l.link.Jitter = p.millis(v, where+".jitter_ms") }},
		{Key: "loss", Decode: func(v *yaml.Node) { l.link.Loss = p.number(v, where+".loss", 0, 1) }},
	})
	return l
}
