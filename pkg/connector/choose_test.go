package connector

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestChoose(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		current []string
		rtts    map[string]time.Duration
		k       int
		want    []string
	}{
		{"nothing known", nil, nil, 2, nil},
		{"k lowest from scratch", nil, map[string]time.Duration{"a": 50 * ms, "b": 10 * ms, "c": 30 * ms}, 2, []string{"b", "c"}},
		{"fewer reachable than k", nil, map[string]time.Duration{"a": unreachable, "b": 10 * ms}, 2, []string{"b"}},
		{"unreachable current dropped", []string{"a", "b"}, map[string]time.Duration{"a": unreachable, "b": 10 * ms, "c": 80 * ms}, 2, []string{"b", "c"}},
		{"slightly slower current kept", []string{"a"}, map[string]time.Duration{"a": 30 * ms, "b": 26 * ms}, 1, []string{"a"}},
		{"20% faster but not 5 ms kept", []string{"a"}, map[string]time.Duration{"a": 10 * ms, "b": 7 * ms}, 1, []string{"a"}},
		{"5 ms faster but not 20% kept", []string{"a"}, map[string]time.Duration{"a": 100 * ms, "b": 90 * ms}, 1, []string{"a"}},
		{"much faster replaces", []string{"a"}, map[string]time.Duration{"a": 100 * ms, "b": 40 * ms}, 1, []string{"b"}},
		{"only the worst current replaced", []string{"a", "b"}, map[string]time.Duration{"a": 100 * ms, "b": 21 * ms, "c": 20 * ms, "d": 10 * ms}, 2, []string{"b", "d"}},
		{"current missing from rtts dropped", []string{"x"}, map[string]time.Duration{"a": 5 * ms}, 1, []string{"a"}},
		{"more current than k keeps the best", []string{"a", "b", "c"}, map[string]time.Duration{"a": 30 * ms, "b": 10 * ms, "c": 20 * ms}, 2, []string{"b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := choose(tt.current, tt.rtts, tt.k)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("choose (-want +got):\n%s", diff)
			}
		})
	}
}
