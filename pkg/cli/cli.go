// Package cli is the command-line shape every Postern binary shares: one
// table of commands with their help text, "-h"/"--help" on every command and
// subcommand (exit status 0), a subcommand group that lists its members when
// called alone, "version"/"--version", and flag help written the way the
// docs write flags ("--name", never "-name").
//
// A main builds an App and calls Main; adding a subcommand is adding one
// row to App.Commands.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
)

// Command is one row of an App's command table.
type Command struct {
	// Name is the words that select the command, such as "run" or
	// "token create". Commands sharing a first word form a group: the
	// group's word alone lists them.
	Name string
	// Args describes positional arguments in the usage line, such as
	// "OLD.json NEW.json"; empty means none.
	Args string
	// Summary is the one-line description shown in the command list and
	// at the top of the command's help.
	Summary string
	// Help, if set, is more text printed after the flags in the command's
	// help.
	Help string
	// Flags declares the command's flags on fs and returns what to run
	// once they are parsed (fs.Args() holds the positional arguments).
	// Exactly one of Flags and Raw is set.
	Flags func(fs *flag.FlagSet) func(ctx context.Context) error
	// Raw runs a command that parses its own arguments (such as "service",
	// which passes the run flags on). "-h" or "--help" as its first
	// argument prints the command's help instead.
	Raw func(ctx context.Context, args []string) error
	// Config makes the command configurable: --config FILE (or
	// POSTERN_CONFIG) names a YAML file whose keys are the flags' names
	// with "_" for "-", and every flag --name-x can also be set by the
	// environment variable POSTERN_NAME_X. Precedence: default < file <
	// environment < command line. Only with Flags.
	Config bool
}

// App is a binary: its name, summary and command table.
type App struct {
	// Name is the binary's name, such as "meshd".
	Name string
	// Summary is the first line of the top-level help.
	Summary string
	// Commands is the command table, in the order the help lists it.
	Commands []Command
	// Default, if set, names the command that runs when no command word
	// is given (the arguments are then its flags); empty means a command
	// is required.
	Default string
	// Stdout and Stderr receive help and errors; nil means os.Stdout and
	// os.Stderr.
	Stdout, Stderr io.Writer
	// LookupEnv reads the environment of configurable commands; nil means
	// os.LookupEnv. An empty variable counts as unset.
	LookupEnv func(string) (string, bool)
}

// singleDash finds a flag written with one dash in the flag package's
// messages ("flag provided but not defined: -x").
var singleDash = regexp.MustCompile(`(^|\s)-([A-Za-z])`)

// ErrUsage marks an error in the command line (unknown command, bad flag,
// missing argument); Main exits with status 2 for it.
var ErrUsage = errors.New("usage")

// Usagef returns an error that Main reports as a usage error (status 2).
func Usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// Main runs the app with the process's arguments and exits: status 0 on
// success and for help, 2 for a usage error, 1 for any other error.
func (a *App) Main(ctx context.Context) {
	os.Exit(a.Exit(ctx, os.Args[1:]))
}

// Exit runs the app with args (without the program name), prints any
// error and returns the exit status Main would use.
func (a *App) Exit(ctx context.Context, args []string) int {
	err := a.Run(ctx, args)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(a.stderr(), "%s: %s\n", a.Name, strings.TrimPrefix(err.Error(), ErrUsage.Error()+": "))
		return 2
	case errors.Is(err, ErrSilent):
		return 1
	}
	fmt.Fprintf(a.stderr(), "%s: %v\n", a.Name, err)
	return 1
}

// ErrSilent makes Exit return status 1 without printing anything (the
// command has said why already).
var ErrSilent = errors.New("failed")

// Run dispatches args to the matching command. Help requests return nil
// or flag.ErrHelp after printing the help to Stdout.
func (a *App) Run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "-h", "--help", "help":
			if len(args) > 1 && args[0] == "help" {
				return a.helpFor(args[1:])
			}
			if a.Default != "" {
				return a.Invoke(ctx, a.Default, []string{"--help"})
			}
			a.printUsage(a.stdout())
			return nil
		case "version", "--version":
			fmt.Fprintln(a.stdout(), VersionLine(a.Name))
			return nil
		}
	}
	if cmd, rest, ok := a.lookup(args); ok {
		return a.invoke(ctx, cmd, rest)
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if a.Default != "" {
			cmd, _, _ := a.lookup([]string{a.Default})
			return a.invoke(ctx, cmd, args)
		}
		if len(args) == 0 {
			a.printUsage(a.stderr())
			return Usagef("no command given")
		}
	}
	if group := a.group(args[0]); len(group) > 0 {
		if len(args) == 1 || args[1] == "-h" || args[1] == "--help" {
			a.printGroup(a.stdout(), args[0], group)
			return nil
		}
		a.printGroup(a.stderr(), args[0], group)
		return Usagef("unknown command %q", args[0]+" "+args[1])
	}
	a.printUsage(a.stderr())
	return Usagef("unknown command %q", args[0])
}

// Invoke runs the command named name with args as if the command line had
// named it; "meshd service run" uses it to run "meshd run".
func (a *App) Invoke(ctx context.Context, name string, args []string) error {
	cmd, _, ok := a.lookup(strings.Fields(name))
	if !ok {
		return fmt.Errorf("cli: no command %q", name)
	}
	return a.invoke(ctx, cmd, args)
}

// lookup finds the command whose name words start args, the longest first.
func (a *App) lookup(args []string) (Command, []string, bool) {
	var best Command
	n := 0
	for _, c := range a.Commands {
		words := strings.Fields(c.Name)
		if len(words) > n && len(words) <= len(args) && slices.Equal(words, args[:len(words)]) {
			best, n = c, len(words)
		}
	}
	return best, args[n:], n > 0
}

// group returns the commands whose name has more than one word and starts
// with word.
func (a *App) group(word string) []Command {
	var out []Command
	for _, c := range a.Commands {
		if w := strings.Fields(c.Name); len(w) > 1 && w[0] == word {
			out = append(out, c)
		}
	}
	return out
}

func (a *App) invoke(ctx context.Context, cmd Command, args []string) error {
	if cmd.Raw != nil {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			a.printCommand(a.stdout(), cmd, nil)
			return nil
		}
		return cmd.Raw(ctx, args)
	}
	fs, run := a.flagSet(cmd)
	if cmd.Config && !helpAsked(args) {
		if _, err := a.configure(fs, args); err != nil {
			return err
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.printCommand(a.stdout(), cmd, fs)
			return flag.ErrHelp
		}
		return Usagef("%s (see %s %s --help)", singleDash.ReplaceAllString(err.Error(), "$1--$2"), a.Name, cmd.Name)
	}
	if cmd.Args == "" && fs.NArg() > 0 {
		return Usagef("%s: unexpected arguments %q (see %s %s --help)", cmd.Name, fs.Args(), a.Name, cmd.Name)
	}
	return run(ctx)
}

// flagSet declares cmd's flags (and --config for a configurable command)
// on a new flag set.
func (a *App) flagSet(cmd Command) (*flag.FlagSet, func(context.Context) error) {
	fs := flag.NewFlagSet(a.Name+" "+cmd.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	run := cmd.Flags(fs)
	if cmd.Config {
		fs.String(ConfigFlag, "", "YAML file of settings: each flag's name with _ for - (every flag is also the variable POSTERN_<NAME>; precedence: file < environment < command line)")
	}
	return fs, run
}

// helpAsked reports whether args ask for help, which needs no
// configuration.
func helpAsked(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "--help", "-help":
			return true
		case "--":
			return false
		}
	}
	return false
}

func (a *App) helpFor(args []string) error {
	if cmd, rest, ok := a.lookup(args); ok && len(rest) == 0 {
		return a.invoke(context.Background(), cmd, []string{"--help"})
	}
	if group := a.group(args[0]); len(group) > 0 && len(args) == 1 {
		a.printGroup(a.stdout(), args[0], group)
		return nil
	}
	a.printUsage(a.stderr())
	return Usagef("no help for %q: unknown command", strings.Join(args, " "))
}

func (a *App) printUsage(w io.Writer) {
	fmt.Fprintf(w, "%s: %s\n\nusage: %s <command> [flags]\n\ncommands:\n", a.Name, a.Summary, a.Name)
	a.printList(w, a.Commands)
	fmt.Fprintf(w, "\n%s <command> --help shows a command's flags; %s version prints the version.\n", a.Name, a.Name)
}

func (a *App) printGroup(w io.Writer, word string, cmds []Command) {
	fmt.Fprintf(w, "usage: %s %s <command> [flags]\n\ncommands:\n", a.Name, word)
	a.printList(w, cmds)
}

func (a *App) printList(w io.Writer, cmds []Command) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range cmds {
		fmt.Fprintf(tw, "  %s\t%s\n", c.Name, c.Summary)
	}
	_ = tw.Flush()
}

func (a *App) printCommand(w io.Writer, cmd Command, fs *flag.FlagSet) {
	line := a.Name + " " + cmd.Name
	if cmd.Name == a.Default {
		line = a.Name
	}
	if fs != nil && hasFlags(fs) {
		line += " [flags]"
	}
	if cmd.Args != "" {
		line += " " + cmd.Args
	}
	fmt.Fprintf(w, "usage: %s\n\n%s\n", line, cmd.Summary)
	if fs != nil && hasFlags(fs) {
		fmt.Fprintln(w, "\nflags:")
		PrintFlags(w, fs)
	}
	if cmd.Help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.Help))
	}
	if cmd.Config {
		fmt.Fprintf(w, "\n%s\n", fmt.Sprintf(configHelp, a.Name))
	}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// PrintFlags writes fs's flags to w as the docs write them: "--name type",
// then the usage text and the default.
func PrintFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		if typ != "" {
			head += " " + typ
		}
		fmt.Fprintf(w, "%s\n        %s", head, usage)
		if def := f.DefValue; def != "" && def != "false" && def != "0" && def != "0s" {
			fmt.Fprintf(w, " (default %s)", def)
		}
		fmt.Fprintln(w)
	})
}

func (a *App) stdout() io.Writer {
	if a.Stdout != nil {
		return a.Stdout
	}
	return os.Stdout
}

func (a *App) stderr() io.Writer {
	if a.Stderr != nil {
		return a.Stderr
	}
	return os.Stderr
}

// List splits a comma-separated flag value into its non-empty, trimmed
// items ("a, b,,c" is a, b, c); an empty value is an empty list.
func List(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
