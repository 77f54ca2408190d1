package deptest

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// binaries are the module's commands and their names.
var binaries = []struct{ name, pkg string }{
	{"meshd", "./meshd"},
	{"connectord", "./connectord"},
	{"bench", "./bench"},
	{"demo", "./meshd/demo"},
	{"auth", "./functions/auth"},
}

// TestBinariesHelpAndVersion builds every command and walks its command
// table as a person would: "--help", "-h" and "help" on the binary, then
// "--help" and "-h" on every command it lists and every group word alone
// print help to standard output and exit 0; "version" and "--version"
// print the name, version, revision and Go version; every flag in the help
// is written "--name" (one style with the docs).
func TestBinariesHelpAndVersion(t *testing.T) {
	root := moduleRoot(t)
	dir := t.TempDir()
	bins := map[string]string{}
	for _, b := range binaries {
		bins[b.name] = filepath.Join(dir, b.name)
		if out, err := goCommand(t.Context(), root, nil, "build", "-o", bins[b.name], b.pkg); err != nil {
			t.Fatalf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	singleDash := regexp.MustCompile(`(?m)(^|\s)-[a-z][a-z-]+`)
	for _, b := range binaries {
		t.Run(b.name, func(t *testing.T) {
			run := func(args ...string) string {
				t.Helper()
				var stdout, stderr bytes.Buffer
				cmd := exec.CommandContext(t.Context(), bins[b.name], args...)
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Errorf("%s %s: %v, want exit status 0\nstdout:\n%s\nstderr:\n%s", b.name, strings.Join(args, " "), err, stdout.String(), stderr.String())
				}
				if stdout.Len() == 0 {
					t.Errorf("%s %s: printed nothing on standard output", b.name, strings.Join(args, " "))
				}
				if m := singleDash.FindString(stdout.String()); m != "" {
					t.Errorf("%s %s: flag written with one dash (%q); the docs write --flag:\n%s", b.name, strings.Join(args, " "), m, stdout.String())
				}
				return stdout.String()
			}
			top := run("--help")
			run("-h")
			run("help")
			for _, v := range []string{"version", "--version"} {
				if got := run(v); !strings.HasPrefix(got, b.name+" ") || !strings.Contains(got, runtime.Version()) || !strings.Contains(got, "revision") {
					t.Errorf("%s %s: got %q, want name, version, revision and %s", b.name, v, got, runtime.Version())
				}
			}
			cmds := listedCommands(top)
			if b.name != "demo" && b.name != "auth" && len(cmds) == 0 {
				t.Fatalf("%s --help lists no commands:\n%s", b.name, top)
			}
			groups := map[string]bool{}
			for _, c := range cmds {
				words := strings.Fields(c)
				if len(words) > 1 {
					groups[words[0]] = true
				}
				for _, h := range []string{"--help", "-h"} {
					if got := run(append(words, h)...); !strings.HasPrefix(got, "usage: "+b.name) {
						t.Errorf("%s %s %s: got %q, want a usage line", b.name, c, h, got)
					}
				}
			}
			for g := range groups {
				if got := run(g); !strings.Contains(got, "usage: "+b.name+" "+g+" <command>") {
					t.Errorf("%s %s: got %q, want the list of its subcommands", b.name, g, got)
				}
			}
		})
	}
}

// listedCommands returns the command names of a top-level help: the first
// column of the lines under "commands:", up to the blank line.
func listedCommands(help string) []string {
	var out []string
	in := false
	for _, line := range strings.Split(help, "\n") {
		switch {
		case line == "commands:":
			in = true
		case in && strings.TrimSpace(line) == "":
			return out
		case in:
			fields := strings.SplitN(strings.TrimSpace(line), "  ", 2)
			out = append(out, strings.TrimSpace(fields[0]))
		}
	}
	return out
}

// TestVersionFromLinker: the package build sets the version and revision
// with -ldflags -X (VCS stamping is off there); "version" prints them.
func TestVersionFromLinker(t *testing.T) {
	root := moduleRoot(t)
	bin := filepath.Join(t.TempDir(), "connectord")
	ld := "-X github.com/postern/postern/pkg/cli.version=9.8.7 -X github.com/postern/postern/pkg/cli.revision=0123abcd"
	if out, err := goCommand(t.Context(), root, nil, "build", "-buildvcs=false", "-ldflags", ld, "-o", bin, "./connectord"); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(t.Context(), bin, "version").Output()
	if err != nil {
		t.Fatalf("version: %v", err)
	}
	if want := "connectord 9.8.7, revision 0123abcd, " + runtime.Version(); !strings.HasPrefix(string(out), want) {
		t.Errorf("got %q, want prefix %q", out, want)
	}
}
