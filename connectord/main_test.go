package main

import (
	"slices"
	"testing"
)

// TestChildArgs: the supervisor runs a staged version with the running
// arguments, the service manager's "service run" turned into "run", and
// never shares the caller's slice.
func TestChildArgs(t *testing.T) {
	for _, tt := range []struct{ in, want []string }{
		{[]string{"service", "run", "--allow=10.0.0.0/8", "--update-url=https://x/y.json"}, []string{"run", "--allow=10.0.0.0/8", "--update-url=https://x/y.json"}},
		{[]string{"run", "--config", `C:\ProgramData\Postern\connectord.yaml`}, []string{"run", "--config", `C:\ProgramData\Postern\connectord.yaml`}},
		{[]string{"service", "install", "--allow=x"}, []string{"service", "install", "--allow=x"}},
		{[]string{"service"}, []string{"service"}},
		{nil, []string{}},
	} {
		in := slices.Clone(tt.in)
		got := childArgs(in)
		if !slices.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
			t.Errorf("childArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if len(got) > 0 && len(in) > 0 && &got[0] == &in[0] {
			t.Errorf("childArgs(%q) shares the caller's slice", tt.in)
		}
	}
}
