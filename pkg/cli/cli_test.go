package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"runtime"
	"strings"
	"testing"
)

// testApp is a small command table with a group, a raw command and a
// command that fails.
func testApp(out, errOut *bytes.Buffer, ran *[]string) *App {
	app := &App{Name: "tool", Summary: "a test tool", Stdout: out, Stderr: errOut}
	app.Commands = []Command{
		{Name: "run", Summary: "run it", Flags: func(fs *flag.FlagSet) func(context.Context) error {
			n := fs.Int("count", 1, "how many")
			return func(context.Context) error {
				*ran = append(*ran, "run", strings.Repeat("x", *n))
				return nil
			}
		}},
		{Name: "token create", Summary: "make a token", Flags: func(fs *flag.FlagSet) func(context.Context) error {
			g := fs.String("group", "", "the group")
			return func(context.Context) error {
				if *g == "" {
					return Usagef("--group is required")
				}
				*ran = append(*ran, "token create "+*g)
				return nil
			}
		}},
		{Name: "token list", Summary: "list tokens", Flags: func(fs *flag.FlagSet) func(context.Context) error {
			return func(context.Context) error { return errors.New("store unreachable") }
		}},
		{Name: "service", Args: "install|run [run flags]", Summary: "a service", Raw: func(ctx context.Context, args []string) error {
			*ran = append(*ran, "service "+strings.Join(args, " "))
			return app.Invoke(ctx, "run", args[1:])
		}},
	}
	return app
}

func TestExit(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		stdout     []string // substrings
		stderr     []string
		ran        []string
		notStdout  []string
		quietError bool
	}{
		{args: nil, code: 2, stderr: []string{"usage: tool <command>", "no command given"}},
		{args: []string{"-h"}, code: 0, stdout: []string{"usage: tool <command>", "token create", "make a token", "tool version"}},
		{args: []string{"--help"}, code: 0, stdout: []string{"usage: tool <command>"}},
		{args: []string{"help"}, code: 0, stdout: []string{"usage: tool <command>"}},
		{args: []string{"help", "token", "create"}, code: 0, stdout: []string{"usage: tool token create [flags]", "--group string"}},
		{args: []string{"help", "token"}, code: 0, stdout: []string{"usage: tool token <command>", "create", "list"}},
		{args: []string{"help", "nope"}, code: 2, stderr: []string{`no help for "nope"`}},
		{args: []string{"token"}, code: 0, stdout: []string{"usage: tool token <command>", "create", "make a token", "list"}, notStdout: []string{"run it"}},
		{args: []string{"token", "-h"}, code: 0, stdout: []string{"usage: tool token <command>"}},
		{args: []string{"token", "--help"}, code: 0, stdout: []string{"usage: tool token <command>"}},
		{args: []string{"token", "bogus"}, code: 2, stderr: []string{`unknown command "token bogus"`, "usage: tool token <command>"}},
		{args: []string{"token", "create", "-h"}, code: 0, stdout: []string{"usage: tool token create [flags]", "make a token", "--group string", "the group"}},
		{args: []string{"token", "create", "--help"}, code: 0, stdout: []string{"--group string"}},
		{args: []string{"token", "create", "--group", "hq"}, code: 0, ran: []string{"token create hq"}},
		{args: []string{"token", "create", "--group=hq", "extra"}, code: 2, stderr: []string{`unexpected arguments ["extra"]`}},
		{args: []string{"token", "create"}, code: 2, stderr: []string{"tool: --group is required"}},
		{args: []string{"token", "create", "--grop", "x"}, code: 2, stderr: []string{"flag provided but not defined: --grop", "see tool token create --help"}},
		{args: []string{"run", "--count", "x"}, code: 2, stderr: []string{`invalid value "x" for flag --count`}},
		{args: []string{"run", "--count", "3"}, code: 0, ran: []string{"run", "xxx"}},
		{args: []string{"token", "list"}, code: 1, stderr: []string{"tool: store unreachable"}},
		{args: []string{"bogus"}, code: 2, stderr: []string{`unknown command "bogus"`, "usage: tool <command>"}},
		{args: []string{"--bogus"}, code: 2, stderr: []string{`unknown command "--bogus"`}},
		{args: []string{"version"}, code: 0, stdout: []string{"tool devel, revision", runtime.Version()}},
		{args: []string{"--version"}, code: 0, stdout: []string{"tool devel"}},
		{args: []string{"service", "-h"}, code: 0, stdout: []string{"usage: tool service install|run [run flags]", "a service"}},
		{args: []string{"service", "run", "--count", "2"}, code: 0, ran: []string{"service run --count 2", "run", "xx"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			var ran []string
			code := testApp(&out, &errOut, &ran).Exit(t.Context(), tt.args)
			if code != tt.code {
				t.Errorf("exit status: got %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out.String(), errOut.String())
			}
			for _, w := range tt.stdout {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.notStdout {
				if strings.Contains(out.String(), w) {
					t.Errorf("stdout has %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut.String())
				}
			}
			if strings.Join(ran, "|") != strings.Join(tt.ran, "|") {
				t.Errorf("ran: got %q, want %q", ran, tt.ran)
			}
			if code == 0 && errOut.Len() > 0 {
				t.Errorf("success wrote to stderr: %s", errOut.String())
			}
		})
	}
}

// TestDefaultCommand: an app with a default command runs it on no
// arguments or on flags, and its help is the command's.
func TestDefaultCommand(t *testing.T) {
	var got string
	newApp := func(out *bytes.Buffer) *App {
		return &App{Name: "demo", Summary: "a demo", Default: "run", Stdout: out, Stderr: out, Commands: []Command{
			{Name: "run", Summary: "run the demo", Flags: func(fs *flag.FlagSet) func(context.Context) error {
				s := fs.Bool("sign-in", true, "sign in")
				return func(context.Context) error {
					got = map[bool]string{true: "signed", false: "open"}[*s]
					return nil
				}
			}},
		}}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{{nil, "signed"}, {[]string{"--sign-in=false"}, "open"}} {
		got = ""
		var out bytes.Buffer
		if code := newApp(&out).Exit(t.Context(), tc.args); code != 0 || got != tc.want {
			t.Errorf("%q: got %d %q, want 0 %q (%s)", tc.args, code, got, tc.want, out.String())
		}
	}
	var out bytes.Buffer
	if code := newApp(&out).Exit(t.Context(), []string{"-h"}); code != 0 || !strings.Contains(out.String(), "usage: demo [flags]") ||
		!strings.Contains(out.String(), "--sign-in") {
		t.Errorf("-h: got %d %q, want the run command's help", code, out.String())
	}
}

// TestPrintFlags: flags are written with two dashes, their type, usage and
// a default only when it says something.
func TestPrintFlags(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("admin", "127.0.0.1:7701", "the `address` of the admin listener")
	fs.Bool("json", false, "print JSON")
	fs.Duration("ttl", 0, "lifetime")
	var b bytes.Buffer
	PrintFlags(&b, fs)
	want := "  --admin address\n        the address of the admin listener (default 127.0.0.1:7701)\n" +
		"  --json\n        print JSON\n" +
		"  --ttl duration\n        lifetime\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestVersionLine(t *testing.T) {
	tests := []struct {
		b    BuildInfo
		want string
	}{
		{BuildInfo{Version: "devel", GoVersion: "go1.26.8"}, "x devel, revision unknown (built without VCS information), go1.26.8 "},
		{BuildInfo{Version: "1.2.3", Revision: "abc123", GoVersion: "go1.26.8"}, "x 1.2.3, revision abc123, go1.26.8 "},
		{BuildInfo{Version: "1.2.3", Revision: "abc123", Modified: true, GoVersion: "go1.26.8"}, "x 1.2.3, revision abc123 (modified), go1.26.8 "},
	}
	for _, tt := range tests {
		if got := tt.b.line("x"); !strings.HasPrefix(got, tt.want) || !strings.HasSuffix(got, runtime.GOOS+"/"+runtime.GOARCH) {
			t.Errorf("got %q, want %q + platform", got, tt.want)
		}
	}
}

func TestList(t *testing.T) {
	for in, want := range map[string]string{"": "", "a": "a", " a , b,,c ": "a|b|c", ",": ""} {
		if got := strings.Join(List(in), "|"); got != want {
			t.Errorf("List(%q): got %q, want %q", in, got, want)
		}
	}
}
