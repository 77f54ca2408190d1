package benchrun

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// realNode is what every meshd of a real-binaries system shares: the
// authority key, the catalogue, the TLS files and the auth functions'
// URL.
type realNode struct {
	key, catalog, tlsDir, authURL string
}

// startNode starts a meshd named "meshd"+suffix (node id
// "bench-node"+suffix, its state and config in the system's directory
// under that name), with env added to its environment, and a connectord
// "connectord"+suffix enrolled to it with the same env, and waits until a
// request through that meshd reaches the backend. It returns the
// meshd's listen address.
func (s *realSystem) startNode(ctx context.Context, suffix string, env []string, n realNode) (string, error) {
	var mesh, wg, admin string
	var err error
	for _, a := range []*string{&mesh, &admin} {
		if *a, err = freeAddr("tcp"); err != nil {
			return "", err
		}
	}
	if wg, err = freeAddr("udp"); err != nil {
		return "", err
	}
	meshd, name := filepath.Join(s.bin, "meshd"), "meshd"+suffix
	mstate := filepath.Join(s.dir, name+"-state")
	if _, _, err := s.run(ctx, nil, meshd, "node", "credential", "--authority-key", n.key, "--id", "bench-node"+suffix,
		"--region", "local", "--state-dir", mstate); err != nil {
		return "", err
	}
	conf := filepath.Join(s.dir, name+".yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`id: bench-node%s
region: local
listen: %s
tls_cert: %s
tls_key: %s
wg_listen: %s
state_dir: %s
authority_key: %s
catalog: %s
admin: %s
auth_url: %s
auth_ca: %s
drain_timeout: 1s
`, suffix, mesh, filepath.Join(n.tlsDir, "cert.pem"), filepath.Join(n.tlsDir, "key.pem"), wg, mstate, n.key, n.catalog, admin, n.authURL, s.ca)), 0o600); err != nil {
		return "", err
	}
	if err := s.startEnv(ctx, name, env, meshd, "run", "--config", conf); err != nil {
		return "", err
	}
	if err := waitHTTP(ctx, http.DefaultClient, "http://"+admin+"/readyz", s.proc(name)); err != nil {
		return "", err
	}
	tok, _, err := s.run(ctx, nil, meshd, "token", "create", "--group", "bench", "--authority-key", n.key, "--catalog", n.catalog)
	if err != nil {
		return "", err
	}
	out, errOut, err := s.run(ctx, []string{"POSTERN_ENROLL_TOKEN=" + strings.TrimSpace(tok)}, filepath.Join(s.bin, "connectord"), "enroll",
		"--mesh", "https://"+mesh, "--state-dir", filepath.Join(s.dir, "connectord"+suffix+"-state"), "--mesh-ca", s.ca, "--allow", "127.0.0.1")
	if err != nil {
		return "", err
	}
	// The run command enroll printed, as an operator would paste it.
	out += errOut
	_, line, ok := strings.Cut(out, "start it with: ")
	line, _, _ = strings.Cut(line, "\n")
	args := strings.Fields(line)
	if !ok || len(args) < 2 || args[0] != "connectord" {
		return "", fmt.Errorf("benchrun: connectord enroll printed no run command:\n%s", out)
	}
	if err := s.startEnv(ctx, "connectord"+suffix, env, filepath.Join(s.bin, "connectord"), append(args[1:], "--admin", "")...); err != nil {
		return "", err
	}
	c := s.clientTo(mesh)
	defer c.CloseIdleConnections()
	return mesh, waitHTTP(ctx, c, "https://"+realHost+"/hello", s.proc("connectord"+suffix))
}

// startTraced starts the system of the postern-traced row: an OTLP sink
// process (bench otlp-sink, standing in for a collector on another
// machine: its CPU is not counted in the row), and a second meshd and
// connectord ("meshd-traced", "connectord-traced") with tracing on,
// every request sampled, exporting to it, configured by the standard
// OTEL_* variables as an operator would.
func (s *realSystem) startTraced(ctx context.Context, n realNode) error {
	sink, err := freeAddr("tcp")
	if err != nil {
		return err
	}
	if err := s.start(ctx, "otlp-sink", filepath.Join(s.bin, "bench"), "otlp-sink", "--listen", sink); err != nil {
		return err
	}
	if err := waitHTTP(ctx, http.DefaultClient, "http://"+sink+"/v1/traces", s.proc("otlp-sink")); err != nil {
		return err
	}
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + sink, "OTEL_TRACES_SAMPLER=always_on"}
	s.meshTraced, err = s.startNode(ctx, "-traced", env, n)
	return err
}
