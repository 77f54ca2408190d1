package simnet

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodTwo = `regions:
  - name: a
    intra_rtt_ms: 1
  - name: b
links:
  - between: [a, b]
    rtt_ms: 100
    jitter_ms: 2.5
    loss: 0.1
sources:
  - "made up for the test"
`

func TestParseMatrixGood(t *testing.T) {
	tests := []struct {
		name string
		in   string
		a, b string
		want Link
	}{
		{"pair", goodTwo, "a", "b", Link{RTT: 100 * time.Millisecond, Jitter: 2500 * time.Microsecond, Loss: 0.1}},
		{"reverse order", goodTwo, "b", "a", Link{RTT: 100 * time.Millisecond, Jitter: 2500 * time.Microsecond, Loss: 0.1}},
		{"intra", goodTwo, "a", "a", Link{RTT: time.Millisecond}},
		{"intra default zero", goodTwo, "b", "b", Link{}},
		{"unknown region", goodTwo, "a", "zz", Link{}},
		{"single region, no links", "regions:\n  - name: solo\n    intra_rtt_ms: 0.5\n", "solo", "solo", Link{RTT: 500 * time.Microsecond}},
		{"integer and float", "regions: [{name: x}, {name: y}]\nlinks: [{between: [y, x], rtt_ms: 7}]\n", "x", "y", Link{RTT: 7 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMatrix([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseMatrix: %v", err)
			}
			if got := m.Link(tt.a, tt.b); got != tt.want {
				t.Errorf("Link(%q, %q): got %+v, want %+v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestParseMatrixBad(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // substring of the error, with the line
	}{
		{"empty", "", "line 1: empty file"},
		{"syntax", "regions: [\n", "line "},
		{"unknown top key", "regions: [{name: a}]\nextra: 1\n", "line 2: matrix: unknown key \"extra\""},
		{"unknown region key", "regions:\n  - name: a\n    colour: red\n", "line 3: regions[0]: unknown key \"colour\""},
		{"unknown link key", strings.Replace(goodTwo, "loss: 0.1", "los: 0.1", 1), "line 9: links[0]: unknown key \"los\""},
		{"missing regions", "links: []\n", "line 1: matrix: missing required key \"regions\""},
		{"no regions", "regions: []\n", "line 1: regions: want at least one region"},
		{"missing name", "regions:\n  - intra_rtt_ms: 1\n", "line 2: regions[0]: missing required key \"name\""},
		{"duplicate region", "regions:\n  - name: a\n  - name: a\n", "line 3: region \"a\" is already defined at line 2"},
		{"negative rtt", strings.Replace(goodTwo, "rtt_ms: 100", "rtt_ms: -5", 1), "line 7: links[0].rtt_ms: -5 is below 0"},
		{"negative intra", strings.Replace(goodTwo, "intra_rtt_ms: 1", "intra_rtt_ms: -1", 1), "line 3: regions[0].intra_rtt_ms: -1 is below 0"},
		{"negative jitter", strings.Replace(goodTwo, "jitter_ms: 2.5", "jitter_ms: -1", 1), "line 8: links[0].jitter_ms: -1 is below 0"},
		{"loss one", strings.Replace(goodTwo, "loss: 0.1", "loss: 1", 1), "line 9: links[0].loss: 1 must be below 1"},
		{"loss negative", strings.Replace(goodTwo, "loss: 0.1", "loss: -0.1", 1), "line 9: links[0].loss: -0.1 is below 0"},
		{"rtt not a number", strings.Replace(goodTwo, "rtt_ms: 100", "rtt_ms: fast", 1), "line 7: links[0].rtt_ms: want a number, got \"fast\""},
		{"rtt infinite", strings.Replace(goodTwo, "rtt_ms: 100", "rtt_ms: .inf", 1), "line 7: links[0].rtt_ms: want a finite number"},
		{"missing rtt", strings.Replace(goodTwo, "    rtt_ms: 100\n", "", 1), "line 6: links[0]: missing required key \"rtt_ms\""},
		{"unknown region in link", strings.Replace(goodTwo, "[a, b]", "[a, c]", 1), "line 6: link names unknown region \"c\""},
		{"self link", "regions: [{name: a}]\nlinks:\n  - between: [a, a]\n    rtt_ms: 1\n", "line 3: links[0].between: a link joins two different regions"},
		{"three names", strings.Replace(goodTwo, "[a, b]", "[a, b, a]", 1), "line 6: links[0].between: want a list of two region names"},
		{"duplicate pair", goodTwo + "links2: 1\n", "unknown key \"links2\""},
		{"duplicate pair reversed", strings.Replace(goodTwo, "sources:", "  - between: [b, a]\n    rtt_ms: 5\nsources:", 1),
			"line 10: link between \"b\" and \"a\" is already defined at line 6"},
		{"missing pair", "regions: [{name: a}, {name: b}, {name: c}]\nlinks:\n  - between: [a, b]\n    rtt_ms: 1\n  - between: [a, c]\n    rtt_ms: 1\n",
			"line 3: missing link between \"b\" (line 1) and \"c\" (line 1)"},
		{"repeated key", "regions: [{name: a}]\nregions: [{name: b}]\n", "line 2: matrix: key \"regions\" repeated (first at line 1)"},
		{"source not a string", "regions: [{name: a}]\nsources: [{x: 1}]\n", "line 2: sources[0]: want a non-empty string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMatrix([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParseMatrix: got %v, nil error, want error containing %q", m, tt.want)
			}
			if !errors.Is(err, ErrInvalidMatrix) {
				t.Errorf("got %v, want it to wrap ErrInvalidMatrix", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDefaultMatrix(t *testing.T) {
	m := DefaultMatrix()
	regions := m.Regions()
	for _, want := range []string{"us-east-1", "eu-west-1", "ap-southeast-1", "us-west-2"} {
		if !m.Has(want) {
			t.Errorf("Has(%q): got false, want true", want)
		}
	}
	for _, a := range regions {
		for _, b := range regions {
			ab, ba := m.Link(a, b), m.Link(b, a)
			if ab != ba {
				t.Errorf("Link(%s, %s) = %+v but Link(%s, %s) = %+v, want symmetric", a, b, ab, b, a, ba)
			}
			if a != b && ab.RTT < 10*time.Millisecond {
				t.Errorf("RTT(%s, %s): got %v, want an inter-region figure", a, b, ab.RTT)
			}
			if a == b && (ab.RTT <= 0 || ab.RTT > 5*time.Millisecond) {
				t.Errorf("RTT(%s, %s): got %v, want about 1ms", a, b, ab.RTT)
			}
		}
	}
	if len(m.Sources()) == 0 {
		t.Errorf("Sources: got none, want citations")
	}
	if got, want := m.RTT("us-east-1", "eu-west-1"), 80500*time.Microsecond; got != want {
		t.Errorf("RTT(us-east-1, eu-west-1): got %v, want %v", got, want)
	}
	if got, err := ParseMatrix(DefaultYAML()); err != nil || len(got.Regions()) != len(regions) {
		t.Errorf("ParseMatrix(DefaultYAML()): got %v, %v", got, err)
	}
}

func TestScale(t *testing.T) {
	m := DefaultMatrix()
	s := m.Scale(0.5)
	if got, want := s.RTT("us-east-1", "eu-west-1"), m.RTT("us-east-1", "eu-west-1")/2; got != want {
		t.Errorf("scaled RTT: got %v, want %v", got, want)
	}
	if got, want := s.Link("us-east-1", "eu-west-1").Jitter, m.Link("us-east-1", "eu-west-1").Jitter/2; got != want {
		t.Errorf("scaled jitter: got %v, want %v", got, want)
	}
	if got, want := m.RTT("us-east-1", "eu-west-1"), 80500*time.Microsecond; got != want {
		t.Errorf("original after Scale: got %v, want %v (unchanged)", got, want)
	}
	if got := m.Scale(-1).RTT("us-east-1", "eu-west-1"); got != 0 {
		t.Errorf("Scale(-1): got %v, want 0", got)
	}
}

func TestLoadMatrix(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(good, []byte(goodTwo), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := LoadMatrix(good)
	if err != nil {
		t.Fatalf("LoadMatrix: %v", err)
	}
	if got, want := m.RTT("a", "b"), 100*time.Millisecond; got != want {
		t.Errorf("RTT: got %v, want %v", got, want)
	}
	if _, err := LoadMatrix(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadMatrix(missing): got %v, want ErrNotExist", err)
	}
}
