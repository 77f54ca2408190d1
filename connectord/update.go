package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/postern/postern/pkg/cli"
	"github.com/postern/postern/pkg/connector"
	"github.com/postern/postern/pkg/nodecred"
	"github.com/postern/postern/pkg/update"
)

// envInstalled carries the installed binary's path to a staged one, which
// restarts through it.
const envInstalled = "POSTERN_UPDATE_INSTALLED"

// updateDir is where the staged releases and the launch state live.
func updateDir(stateDir string) string { return filepath.Join(stateDir, "update") }

// launch runs, at start, the staged release that update.Launch picks
// (exec: it does not return then).
func launch(stateDir string, logger *slog.Logger) error {
	d, err := update.Launch(updateDir(stateDir), os.Environ())
	if err != nil {
		return err
	}
	if d.RolledBack != "" {
		logger.Warn("update_rolled_back", "version", d.RolledBack, "reason", "it did not attach on its trial start")
	}
	if d.Exec == "" {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	env := d.Env
	if os.Getenv(envInstalled) == "" {
		env = append(env, envInstalled+"="+self)
	}
	logger.Info("update_launch", "binary", d.Exec, "trial", d.Trial)
	return execBinary(d.Exec, env)
}

// restart execs the installed binary again, which launches the staged
// release on trial; where updates are supervised (Windows) it returns
// update.ErrRestart instead, for the supervisor to start the staged
// release.
func restart() error {
	if superviseUpdates {
		return update.ErrRestart
	}
	installed := os.Getenv(envInstalled)
	if installed == "" {
		var err error
		if installed, err = os.Executable(); err != nil {
			return err
		}
	}
	env := slices.DeleteFunc(os.Environ(), func(e string) bool {
		return strings.HasPrefix(e, update.EnvLaunched+"=") || strings.HasPrefix(e, update.EnvTrial+"=") || strings.HasPrefix(e, envInstalled+"=")
	})
	return execBinary(installed, env)
}

// autoUpdate wires the connector's opt-in self-update: it commits a
// trial version once attached (or fails, for a rollback), and runs the
// update loop.
func autoUpdate(ctx context.Context, c *connector.Connector, stateDir, manifestURL, keys string, cfg connector.AutoUpdateConfig, logger *slog.Logger) error {
	pub, err := releaseKeys(keys)
	if err != nil {
		return err
	}
	version := cli.ReadBuildInfo().Version
	u, err := update.New(update.Config{ManifestURL: manifestURL, Keys: pub, Product: "connectord", Current: version,
		Platform: runtime.GOOS + "/" + runtime.GOARCH, Dir: updateDir(stateDir)})
	if err != nil {
		return err
	}
	cfg.Updater, cfg.Version, cfg.Restart = u, version, restart
	if v := os.Getenv(update.EnvTrial); v != "" {
		if err := c.CommitTrial(ctx, updateDir(stateDir), v, cfg.TrialTimeout); err != nil {
			return err
		}
	}
	logger.Info("self_update_on", "version", version, "manifest", manifestURL)
	return c.AutoUpdate(ctx, cfg)
}

// releaseKeys parses the pinned release keys: base64, comma-separated,
// or "file:/path".
func releaseKeys(v string) ([]ed25519.PublicKey, error) {
	if path, ok := strings.CutPrefix(v, "file:"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--update-key: %w", err)
		}
		v = string(b)
	}
	keys, err := nodecred.ParsePublicKeys(v)
	if err != nil {
		return nil, fmt.Errorf("--update-key: %w", err)
	}
	return keys, nil
}
