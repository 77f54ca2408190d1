package simnet

import (
	_ "embed"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"time"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns a copy of the embedded default matrix file, so that
// tools can print or extend it.
func DefaultYAML() []byte { return slices.Clone(defaultYAML) }

// DefaultMatrix returns the embedded default matrix (us-east-1, us-west-2,
// eu-west-1, ap-southeast-1). It panics only if the embedded file is broken,
// which a test rules out.
func DefaultMatrix() *Matrix {
	m, err := ParseMatrix(defaultYAML)
	if err != nil {
		panic(fmt.Sprintf("simnet: embedded default.yaml: %v", err))
	}
	return m
}

// Link describes the path between two regions, or inside one region.
// The zero Link means no delay and no loss.
type Link struct {
	// RTT is the round-trip time; each direction costs RTT/2.
	RTT time.Duration
	// Jitter is the standard deviation of the round trip; each direction
	// draws a normal deviation of Jitter/√2, and a one-way delay is never
	// negative. Zero means every packet takes exactly RTT/2.
	Jitter time.Duration
	// Loss is the probability in [0,1) that one packet is dropped in one
	// direction. Zero means no loss.
	Loss float64
}

// zero reports whether the link neither delays nor drops anything.
func (l Link) zero() bool { return l.RTT <= 0 && l.Jitter <= 0 && l.Loss <= 0 }

// Matrix is a complete, symmetric table of links between named regions.
// It is immutable after ParseMatrix and safe for concurrent use.
type Matrix struct {
	regions []string       // file order
	index   map[string]int // region -> position in regions
	links   [][]Link       // links[i][j] == links[j][i]; links[i][i] is intra-region
	sources []string
}

// LoadMatrix reads and parses the matrix file at path.
func LoadMatrix(path string) (*Matrix, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load matrix: %w", err)
	}
	m, err := ParseMatrix(data)
	if err != nil {
		return nil, fmt.Errorf("load matrix %s: %w", path, err)
	}
	return m, nil
}

// Regions returns the region names in file order.
func (m *Matrix) Regions() []string { return slices.Clone(m.regions) }

// Has reports whether the matrix names region.
func (m *Matrix) Has(region string) bool {
	_, ok := m.index[region]
	return ok
}

// Link returns the link between regions a and b, which is the same both
// ways; a == b gives the intra-region link. An unknown region gives the zero
// Link.
func (m *Matrix) Link(a, b string) Link {
	i, ok := m.index[a]
	if !ok {
		return Link{}
	}
	j, ok := m.index[b]
	if !ok {
		return Link{}
	}
	return m.links[i][j]
}

// RTT returns the round-trip time between regions a and b (zero for an
// unknown region).
func (m *Matrix) RTT(a, b string) time.Duration { return m.Link(a, b).RTT }

// Sources returns the citations the file gives for its figures.
func (m *Matrix) Sources() []string { return slices.Clone(m.sources) }

// Scale returns a copy of m with every RTT and jitter multiplied by f; loss
// is unchanged. Tests use it to run a realistic shape faster. A negative or
// NaN f is treated as 0.
func (m *Matrix) Scale(f float64) *Matrix {
	if !(f > 0) {
		f = 0
	}
	scale := func(d time.Duration) time.Duration { return time.Duration(math.Round(float64(d) * f)) }
	c := &Matrix{
		regions: slices.Clone(m.regions),
		index:   make(map[string]int, len(m.index)),
		links:   make([][]Link, len(m.links)),
		sources: slices.Clone(m.sources),
	}
	for k, v := range m.index {
		c.index[k] = v
	}
	for i, row := range m.links {
		c.links[i] = make([]Link, len(row))
		for j, l := range row {
			c.links[i][j] = Link{RTT: scale(l.RTT), Jitter: scale(l.Jitter), Loss: l.Loss}
		}
	}
	return c
}

// ParseMatrix parses and validates a matrix file (format in the package
// documentation). Unknown keys, impossible values, links naming unknown
// regions, duplicate and missing pairs are reported with their line numbers;
// all problems found are returned together, wrapping ErrInvalidMatrix.
func ParseMatrix(data []byte) (*Matrix, error) {
	spec, problems := decodeSpec(data)
	var m *Matrix
	if len(problems) == 0 {
		m, problems = build(spec)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("parse matrix: %w: %w", ErrInvalidMatrix, errors.Join(problems...))
	}
	return m, nil
}

// build turns a decoded spec into a Matrix, checking references and
// completeness.
func build(s *fileSpec) (*Matrix, []error) {
	var problems []error
	bad := func(line int, format string, args ...any) {
		problems = append(problems, fmt.Errorf("line %d: "+format, append([]any{line}, args...)...))
	}
	m := &Matrix{index: make(map[string]int), sources: s.sources}
	var lines []int // lines[i] is the line of m.regions[i]
	for _, r := range s.regions {
		if first, dup := m.index[r.name]; dup {
			bad(r.line, "region %q is already defined at line %d", r.name, lines[first])
			continue
		}
		lines = append(lines, r.line)
		m.index[r.name] = len(m.regions)
		m.regions = append(m.regions, r.name)
	}
	if len(problems) > 0 {
		return nil, problems
	}
	n := len(m.regions)
	m.links = make([][]Link, n)
	seen := make([][]int, n) // line of the link that set links[i][j]
	for i := range m.links {
		m.links[i] = make([]Link, n)
		seen[i] = make([]int, n)
		m.links[i][i] = Link{RTT: s.regions[i].intra}
	}
	for _, l := range s.links {
		i, iok := m.index[l.a]
		j, jok := m.index[l.b]
		switch {
		case !iok:
			bad(l.line, "link names unknown region %q", l.a)
		case !jok:
			bad(l.line, "link names unknown region %q", l.b)
		case seen[i][j] != 0:
			bad(l.line, "link between %q and %q is already defined at line %d", l.a, l.b, seen[i][j])
		default:
			seen[i][j], seen[j][i] = l.line, l.line
			m.links[i][j], m.links[j][i] = l.link, l.link
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			if seen[i][j] == 0 {
				bad(s.linksLine, "missing link between %q (line %d) and %q (line %d)",
					m.regions[i], s.regions[i].line, m.regions[j], s.regions[j].line)
			}
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return m, nil
}
