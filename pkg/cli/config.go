package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v3"

	"github.com/postern/postern/pkg/yamlcheck"
)

// EnvPrefix starts the environment variable of every setting of a
// configurable command: --tls-cert is POSTERN_TLS_CERT.
const EnvPrefix = "POSTERN_"

// ConfigFlag is the flag (and environment variable POSTERN_CONFIG) naming
// a configurable command's YAML file.
const ConfigFlag = "config"

// EnvName returns the environment variable of flag name: POSTERN_ and the
// name in upper case with "_" for "-".
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// KeyName returns the configuration file key of flag name: the name with
// "_" for "-".
func KeyName(flagName string) string { return strings.ReplaceAll(flagName, "-", "_") }

// Setting is where one setting of a configurable command got its value.
type Setting struct {
	// Flag is the flag's name, without dashes.
	Flag string
	// Value is the value in effect, or "(set)" for a flag whose name
	// says it holds a secret.
	Value string
	// Source is "default", "FILE:LINE", the environment variable's name,
	// or "command line".
	Source string
}

// ConfigError is one problem in a configuration file or variable: a
// compiler-style "file:line: message", or "POSTERN_X: message".
type ConfigError struct {
	// Where is "file:line" or the variable's name.
	Where string
	// Msg says what is wrong; it never holds the value (which may be a
	// secret).
	Msg string
	// Class is one of yamlcheck's classes, or nil for a bad value.
	Class error
	line  int // for sorting
}

// Error returns "where: msg".
func (e *ConfigError) Error() string { return e.Where + ": " + e.Msg }

// Unwrap returns the problem's class.
func (e *ConfigError) Unwrap() error { return e.Class }

// configure fills fs from the configuration file named by --config (or
// POSTERN_CONFIG) and from the environment, before the command line is
// parsed over them: default < file < environment < command line. It
// returns where each setting came from.
func (a *App) configure(fs *flag.FlagSet, args []string) ([]Setting, error) {
	src := map[string]string{}
	path, fromEnv := configPath(args), false
	if path == "" {
		path, fromEnv = a.lookupEnv(EnvName(ConfigFlag))
	}
	var errs []error
	if path != "" {
		if err := applyFile(fs, path, src); err != nil {
			if fromEnv {
				err = fmt.Errorf("%s: %w", EnvName(ConfigFlag), err)
			}
			return nil, err
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		name := EnvName(f.Name)
		v, ok := a.lookupEnv(name)
		if !ok || f.Name == ConfigFlag {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, &ConfigError{Where: name, Msg: badValue(f)})
			return
		}
		src[f.Name] = name
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []Setting
	fs.VisitAll(func(f *flag.Flag) {
		s := Setting{Flag: f.Name, Value: f.Value.String(), Source: "default"}
		if v, ok := src[f.Name]; ok {
			s.Source = v
		}
		if secretName(f.Name) && s.Value != "" {
			s.Value = "(set)"
		}
		out = append(out, s)
	})
	return out, nil
}

func (a *App) lookupEnv(name string) (string, bool) {
	if a.LookupEnv != nil {
		v, ok := a.LookupEnv(name)
		return v, ok && v != ""
	}
	v, ok := os.LookupEnv(name)
	return v, ok && v != ""
}

// configPath finds --config's value on the command line before the flags
// are parsed; "" when it is not there.
func configPath(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			return ""
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != ConfigFlag {
			continue
		}
		if hasVal {
			return val
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// applyFile sets fs's flags from the YAML file at path: a mapping whose
// keys are flag names with "_" for "-", whose values are scalars (a list
// for a comma-separated flag). Every problem is reported with its line.
func applyFile(fs *flag.FlagSet, path string, src map[string]string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return ApplyConfig(fs, path, data, src)
}

// ApplyConfig sets fs's flags from data, the YAML configuration file named
// name (see applyFile); src, if not nil, records "name:line" for each flag
// set. It changes fs only when the whole file is valid.
func ApplyConfig(fs *flag.FlagSet, name string, data []byte, src map[string]string) error {
	var errs []error
	report := func(line int, class error, msg string) {
		where := name
		if line > 0 {
			where = fmt.Sprintf("%s:%d", name, line)
		}
		errs = append(errs, &ConfigError{Where: where, Msg: msg, Class: class, line: line})
	}
	root := yamlcheck.Root(data, "the configuration", "a mapping of settings (the flags' names with _ for -)", report)
	if root == nil {
		return errors.Join(errs...)
	}
	type set struct {
		flag  *flag.Flag
		value string
		line  int
	}
	var sets []set
	var fields []yamlcheck.Field
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == ConfigFlag {
			return
		}
		fields = append(fields, yamlcheck.Field{Key: KeyName(f.Name), Decode: func(v *yaml.Node) {
			if s, ok := scalarValue(v, KeyName(f.Name), report); ok {
				sets = append(sets, set{f, s, v.Line})
			}
		}})
	})
	yamlcheck.Mapping(root, fields, report)
	// Check every value on a scratch flag first: fs changes only when all
	// are valid.
	for _, s := range sets {
		if err := checkValue(s.flag, s.value); err != nil {
			report(s.line, nil, fmt.Sprintf("%s: %s", KeyName(s.flag.Name), badValue(s.flag)))
		}
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b error) int { return a.(*ConfigError).line - b.(*ConfigError).line })
		return errors.Join(errs...)
	}
	for _, s := range sets {
		_ = fs.Set(s.flag.Name, s.value) // checkValue accepted it above
		if src != nil {
			src[s.flag.Name] = fmt.Sprintf("%s:%d", name, s.line)
		}
	}
	return nil
}

// scalarValue returns a setting's value as the flag would read it from the
// command line: a scalar's text, or a list of scalars joined with commas.
func scalarValue(v *yaml.Node, key string, report yamlcheck.Report) (string, bool) {
	switch {
	case v.Kind == yaml.ScalarNode && !yamlcheck.IsNull(v):
		return v.Value, true
	case v.Kind == yaml.SequenceNode:
		items := make([]string, 0, len(v.Content))
		for _, it := range v.Content {
			it = yamlcheck.Resolve(it)
			if it.Kind != yaml.ScalarNode || yamlcheck.IsNull(it) || strings.Contains(it.Value, ",") {
				report(it.Line, yamlcheck.ErrType, fmt.Sprintf("%s: list items must be single values, got %s", key, yamlcheck.Describe(it)))
				return "", false
			}
			items = append(items, it.Value)
		}
		return strings.Join(items, ","), true
	}
	report(v.Line, yamlcheck.ErrType, fmt.Sprintf("%s: got %s, want a single value", key, yamlcheck.Describe(v)))
	return "", false
}

// checkValue reports whether v would be accepted by f, without changing f:
// it sets a fresh value of the same kind where the flag package allows.
func checkValue(f *flag.Flag, v string) error {
	scratch := flag.NewFlagSet("check", flag.ContinueOnError)
	scratch.SetOutput(io.Discard)
	if g, ok := f.Value.(flag.Getter); ok {
		switch g.Get().(type) {
		case bool:
			scratch.Bool("x", false, "")
		case int:
			scratch.Int("x", 0, "")
		case int64:
			scratch.Int64("x", 0, "")
		case uint:
			scratch.Uint("x", 0, "")
		case uint64:
			scratch.Uint64("x", 0, "")
		case float64:
			scratch.Float64("x", 0, "")
		default:
			if _, isDur := g.Get().(interface{ Hours() float64 }); isDur {
				scratch.Duration("x", 0, "")
			} else {
				return nil // a string, or a kind only the flag itself checks
			}
		}
		return scratch.Set("x", v)
	}
	return nil
}

// badValue says what a flag wants, without echoing the value given.
func badValue(f *flag.Flag) string {
	typ, _ := flag.UnquoteUsage(f)
	switch typ {
	case "":
		return "invalid value: want true or false"
	case "duration":
		return "invalid value: want a duration such as 30s or 5m"
	case "int", "uint", "int64", "uint64":
		return "invalid value: want a whole number"
	case "float", "float64":
		return "invalid value: want a number"
	}
	return "invalid value: want a " + typ
}

// secretName reports whether a flag's name says it holds a secret, whose
// value is never printed.
func secretName(name string) bool {
	for _, s := range []string{"token", "secret", "password"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// Settings returns the settings the configurable command name would run
// with, given args (the command's flags, e.g. --config FILE), without
// running it. It reports every problem in the file and the environment.
func (a *App) Settings(name string, args []string) ([]Setting, error) {
	cmd, _, ok := a.lookup(strings.Fields(name))
	if !ok || !cmd.Config {
		return nil, fmt.Errorf("cli: no configurable command %q", name)
	}
	fs, _ := a.flagSet(cmd)
	settings, err := a.configure(fs, args)
	if err != nil {
		return nil, err
	}
	// The command line, parsed alone, tells which flags it sets.
	cl, _ := a.flagSet(cmd)
	if err := cl.Parse(args); err != nil {
		return nil, Usagef("%s", singleDash.ReplaceAllString(err.Error(), "$1--$2"))
	}
	_ = fs.Parse(args) // the same arguments parsed without error into cl
	explicit := map[string]bool{}
	cl.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	for i, s := range settings {
		if explicit[s.Flag] {
			settings[i].Source = "command line"
			settings[i].Value = fs.Lookup(s.Flag).Value.String()
			if secretName(s.Flag) && settings[i].Value != "" {
				settings[i].Value = "(set)"
			}
		}
	}
	return settings, nil
}

// WriteSettings prints settings as a table: setting (file key), value,
// source.
func WriteSettings(w io.Writer, settings []Setting) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tSOURCE")
	for _, s := range slices.Clone(settings) {
		if s.Flag == ConfigFlag {
			continue
		}
		v := s.Value
		if v == "" {
			v = `""`
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", KeyName(s.Flag), v, s.Source)
	}
	return tw.Flush()
}

// configHelp ends the help of a configurable command (%s: the binary).
const configHelp = `Every flag is also a key of the --config file (the name with _ for -,
e.g. log_level: debug; a list for a comma-separated flag) and an
environment variable (POSTERN_LOG_LEVEL). Precedence: file < environment
< command line. "%s config check --config FILE" validates them offline.`

// ConfigCheck returns the "config check" command of the configurable
// command name: it validates the settings name would run with (file,
// environment, flags) without running it, prints each with its source,
// then calls then, if not nil, for checks of its own (a main checks the
// files the settings name).
func ConfigCheck(app *App, name string, then func([]Setting) error) Command {
	return Command{Name: "config check", Args: "[--config FILE] [" + name + " flags]",
		Summary: "validate the settings of \"" + app.Name + " " + name + "\" (file, POSTERN_* variables, flags) offline and print each one's source",
		Raw: func(ctx context.Context, args []string) error {
			settings, err := app.Settings(name, args)
			if err != nil {
				return err
			}
			if err := WriteSettings(app.stdout(), settings); err != nil {
				return err
			}
			if then != nil {
				return then(settings)
			}
			return nil
		}}
}
