package benchrun

import (
	"strings"
	"testing"
)

func TestCPUModel(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"x86", "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nmodel name\t: other\n", "AMD EPYC 7B13"},
		{"arm", "processor\t: 0\nBogoMIPS\t: 50.00\nModel\t\t: Raspberry Pi 4\n", "Raspberry Pi 4"},
		{"none", "processor\t: 0\nflags\t: fpu\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := cpuModel(strings.NewReader(tc.in)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDescribeMachine(t *testing.T) {
	m := DescribeMachine()
	if m.CPU == "" || m.Cores < 1 || !strings.HasPrefix(m.GoVersion, "go") || m.GOOS == "" || m.GOARCH == "" {
		t.Fatalf("got %+v, want every field set", m)
	}
}
