package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/postern/postern/pkg/yamlcheck"
)

// got is what the configurable test command ran with.
type got struct {
	Listen, Token, Join string
	Drain               time.Duration
	Conns               int
	Plain               bool
}

func configApp(env map[string]string, out *got) *App {
	app := &App{Name: "tool", Stdout: new(bytes.Buffer), Stderr: new(bytes.Buffer),
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	app.Commands = []Command{{Name: "run", Summary: "run it", Config: true, Flags: func(fs *flag.FlagSet) func(context.Context) error {
		listen := fs.String("listen", ":443", "listen address")
		token := fs.String("join-token", "", "a secret")
		join := fs.String("join", "", "comma-separated peers")
		drain := fs.Duration("drain-timeout", 10*time.Second, "drain")
		conns := fs.Int("conns-per-ip", 512, "conns")
		plain := fs.Bool("insecure-plain-http", false, "plain")
		return func(context.Context) error {
			*out = got{Listen: *listen, Token: *token, Join: *join, Drain: *drain, Conns: *conns, Plain: *plain}
			return nil
		}
	}}}
	return app
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, `listen: 127.0.0.1:8443   # file
join: [a:7946, b:7946]
drain_timeout: 1m
conns_per_ip: 7
insecure_plain_http: true
`)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want got
	}{
		{"defaults", nil, nil, got{Listen: ":443", Drain: 10 * time.Second, Conns: 512}},
		{"file", nil, []string{"--config", file}, got{Listen: "127.0.0.1:8443", Join: "a:7946,b:7946", Drain: time.Minute, Conns: 7, Plain: true}},
		{"file named by the environment", map[string]string{"POSTERN_CONFIG": file}, nil,
			got{Listen: "127.0.0.1:8443", Join: "a:7946,b:7946", Drain: time.Minute, Conns: 7, Plain: true}},
		{"environment over file", map[string]string{"POSTERN_LISTEN": ":9443", "POSTERN_CONNS_PER_IP": "9", "POSTERN_INSECURE_PLAIN_HTTP": "false"},
			[]string{"--config=" + file}, got{Listen: ":9443", Join: "a:7946,b:7946", Drain: time.Minute, Conns: 9}},
		{"command line over environment and file", map[string]string{"POSTERN_LISTEN": ":9443"},
			[]string{"--config", file, "--listen", ":10443", "--drain-timeout=2s"}, got{Listen: ":10443", Join: "a:7946,b:7946", Drain: 2 * time.Second, Conns: 7, Plain: true}},
		{"empty variable is unset", map[string]string{"POSTERN_LISTEN": ""}, nil, got{Listen: ":443", Drain: 10 * time.Second, Conns: 512}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g got
			if err := configApp(tc.env, &g).Run(context.Background(), append([]string{"run"}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, g); diff != "" {
				t.Fatalf("settings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigStrict(t *testing.T) {
	const secret = "s3cr:et/with=separators,and:colons"
	for _, tc := range []struct {
		name, body string
		env        map[string]string
		class      error
		want       []string // substrings of the error
	}{
		{"unknown key", "listen: :1\nlisten_addr: x\n", nil, yamlcheck.ErrUnknownKey, []string{":2: unknown key \"listen_addr\"", "known keys: conns_per_ip, drain_timeout"}},
		{"flag spelling", "drain-timeout: 1s\n", nil, yamlcheck.ErrUnknownKey, []string{":1: unknown key \"drain-timeout\""}},
		{"the config key itself", "config: other.yaml\n", nil, yamlcheck.ErrUnknownKey, []string{":1: unknown key \"config\""}},
		{"repeated key", "listen: :1\nlisten: :2\n", nil, yamlcheck.ErrDuplicate, []string{":2: key \"listen\" repeated (first at line 1)"}},
		{"mapping value", "listen:\n  host: x\n", nil, yamlcheck.ErrType, []string{":2: listen: got a mapping, want a single value"}},
		{"null value", "listen:\n", nil, yamlcheck.ErrType, []string{":1: listen: got null"}},
		{"bad duration", "listen: :1\ndrain_timeout: " + secret + "\n", nil, nil, []string{":2: drain_timeout: invalid value: want a duration"}},
		{"bad number", "conns_per_ip: many\n", nil, nil, []string{":1: conns_per_ip: invalid value: want a whole number"}},
		{"bad bool", "insecure_plain_http: " + secret + "\n", nil, nil, []string{":1: insecure_plain_http: invalid value: want true or false"}},
		{"list item with a comma", "join: [\"a,b\"]\n", nil, yamlcheck.ErrType, []string{":1: join: list items must be single values"}},
		{"not a mapping", "- listen\n", nil, yamlcheck.ErrSyntax, []string{":1: the configuration must be a mapping"}},
		{"two documents", "listen: :1\n---\nlisten: :2\n", nil, yamlcheck.ErrSyntax, []string{"several YAML documents"}},
		{"bad YAML", "listen: [\n", nil, yamlcheck.ErrSyntax, []string{"invalid YAML"}},
		{"bad environment value", "listen: :1\n", map[string]string{"POSTERN_DRAIN_TIMEOUT": secret}, nil, []string{"POSTERN_DRAIN_TIMEOUT: invalid value: want a duration"}},
		{"every problem at once", "drain_timeout: x\nconns_per_ip: y\n", nil, nil, []string{":1: drain_timeout", ":2: conns_per_ip"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g got
			file := writeFile(t, tc.body)
			err := configApp(tc.env, &g).Run(context.Background(), []string{"run", "--config", file})
			if err == nil {
				t.Fatalf("ran with %+v, want an error", g)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tc.class != nil && !errors.Is(err, tc.class) {
				t.Errorf("error %v is not %v", err, tc.class)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "s3cr") {
				t.Errorf("error %q echoes the value", err)
			}
			if g != (got{}) {
				t.Errorf("the command ran: %+v", g)
			}
		})
	}
}

func TestConfigMissingFile(t *testing.T) {
	var g got
	err := configApp(nil, &g).Run(context.Background(), []string{"run", "--config", filepath.Join(t.TempDir(), "none.yaml")})
	if err == nil || !strings.Contains(err.Error(), "none.yaml") {
		t.Fatalf("got %v, want an error naming the file", err)
	}
	err = configApp(map[string]string{"POSTERN_CONFIG": "/nonexistent/x.yaml"}, &g).Run(context.Background(), []string{"run"})
	if err == nil || !strings.Contains(err.Error(), "POSTERN_CONFIG") {
		t.Fatalf("got %v, want an error naming POSTERN_CONFIG", err)
	}
}

func TestSettingsSources(t *testing.T) {
	file := writeFile(t, "listen: :8443\njoin_token: hunter2\n")
	app := configApp(map[string]string{"POSTERN_CONNS_PER_IP": "3"}, new(got))
	settings, err := app.Settings("run", []string{"--config", file, "--join", "x:1"})
	if err != nil {
		t.Fatal(err)
	}
	src := map[string]string{}
	for _, s := range settings {
		src[s.Flag] = s.Value + " from " + s.Source
	}
	want := map[string]string{
		"listen":              ":8443 from " + file + ":1",
		"join-token":          "(set) from " + file + ":2",
		"conns-per-ip":        "3 from POSTERN_CONNS_PER_IP",
		"join":                "x:1 from command line",
		"drain-timeout":       "10s from default",
		"insecure-plain-http": "false from default",
		"config":              file + " from command line",
	}
	if diff := cmp.Diff(want, src); diff != "" {
		t.Fatalf("settings (-want +got):\n%s", diff)
	}
	var buf bytes.Buffer
	WriteSettings(&buf, settings)
	if strings.Contains(buf.String(), "hunter2") || !strings.Contains(buf.String(), "join_token") {
		t.Fatalf("table shows a secret or lacks a key:\n%s", buf.String())
	}
}

func TestConfigHelpNeedsNoFile(t *testing.T) {
	var g got
	app := configApp(map[string]string{"POSTERN_CONFIG": "/nonexistent.yaml"}, &g)
	out := app.Stdout.(*bytes.Buffer)
	if err := app.Run(context.Background(), []string{"run", "--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("help: %v", err)
	}
	if !strings.Contains(out.String(), "--config string") {
		t.Fatalf("help lacks --config:\n%s", out)
	}
}
