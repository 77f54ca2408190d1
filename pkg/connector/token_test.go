package connector

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	os.WriteFile(file, []byte("  tok-from-file\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	tests := []struct {
		name, flag, file, env, stdin string
		want                         string
		err                          string
	}{
		{name: "flag", flag: "tok-flag", want: "tok-flag"},
		{name: "env", env: "tok-env\n", want: "tok-env"},
		{name: "file", file: file, want: "tok-from-file"},
		{name: "stdin", file: "-", stdin: "tok-stdin\n", want: "tok-stdin"},
		{name: "none", err: "no enrolment token"},
		{name: "twice", flag: "a", env: "b", err: "more than once"},
		{name: "missing file", file: filepath.Join(dir, "nope"), err: "--token-file"},
		{name: "empty file", file: empty, err: "empty"},
		{name: "empty stdin", file: "-", err: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadToken(tt.flag, tt.file, tt.env, strings.NewReader(tt.stdin))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
