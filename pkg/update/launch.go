package update

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/postern/postern/pkg/wgkey"
)

// The launch state, <Dir>/state.json:
//
//	current  the staged version that proved itself (attached), run at start
//	trial    a staged version not yet proven; run once, then kept
//	         (Commit) or rolled back
//	bad      versions that failed their trial, never staged again
//
// The installed binary (the package's, /usr/bin/connectord) is the
// launcher: at every start it runs Launch, which execs the binary to run.
// Without a state it runs itself.

const stateFile = "state.json"

// Environment variables between the launcher and the binary it runs.
const (
	// EnvLaunched marks a binary started by Launch: it runs as it is.
	EnvLaunched = "POSTERN_UPDATE_LAUNCHED"
	// EnvTrial holds the version a binary runs on trial; it must Commit
	// once attached.
	EnvTrial = "POSTERN_UPDATE_TRIAL"
)

type binary struct {
	Version string `json:"version"`
	Path    string `json:"path"`
	SHA256  string `json:"sha256"`
}

type state struct {
	Current  *binary  `json:"current,omitempty"`
	Trial    *binary  `json:"trial,omitempty"`
	Attempts int      `json:"trial_attempts,omitempty"`
	Bad      []string `json:"bad,omitempty"`
}

func (s *state) isBad(v string) bool { return slices.Contains(s.Bad, v) }

func loadState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &state{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("update: state: %w", err)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("update: state %s: %w", filepath.Join(dir, stateFile), err)
	}
	return &s, nil
}

func updateState(dir string, f func(*state)) error {
	s, err := loadState(dir)
	if err != nil {
		return err
	}
	f(s)
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return wgkey.WriteFileAtomic(filepath.Join(dir, stateFile), b, 0o600)
}

// Decision is what Launch decided.
type Decision struct {
	// Exec is the binary to exec, "" to run the calling one.
	Exec string
	// Env is the environment to exec it with.
	Env []string
	// Trial is the version run on trial, "" if none.
	Trial string
	// RolledBack is the version whose trial failed and was given up now.
	RolledBack string
}

// Launch decides, at a start of the installed binary, what to run: a
// staged trial version once (its second start without a Commit means it
// failed: it is rolled back and marked bad), else the current staged
// version, else the installed binary itself. A staged binary whose
// SHA-256 no longer matches is not run. env is the caller's environment.
// A binary started by Launch (EnvLaunched set) gets the zero Decision.
func Launch(dir string, env []string) (Decision, error) {
	if slices.Contains(env, EnvLaunched+"=1") {
		return Decision{}, nil
	}
	var d Decision
	err := updateState(dir, func(s *state) {
		if s.Trial != nil {
			if s.Attempts == 0 && intact(s.Trial) {
				s.Attempts = 1
				d = Decision{Exec: s.Trial.Path, Trial: s.Trial.Version}
				return
			}
			d.RolledBack = s.Trial.Version
			s.Bad = append(s.Bad, s.Trial.Version)
			s.Trial, s.Attempts = nil, 0
		}
		if s.Current != nil {
			if intact(s.Current) {
				d.Exec = s.Current.Path
			} else {
				s.Current = nil // tampered or gone: run the installed binary
			}
		}
	})
	if err != nil {
		return Decision{}, err
	}
	if d.Exec != "" {
		d.Env = append(slices.Clone(env), EnvLaunched+"=1")
		if d.Trial != "" {
			d.Env = append(d.Env, EnvTrial+"="+d.Trial)
		}
	}
	return d, nil
}

// intact reports whether b's file still has its SHA-256.
func intact(b *binary) bool {
	data, err := os.ReadFile(b.Path)
	if err != nil {
		return false
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]) == b.SHA256
}

// Commit keeps the trial version: it becomes the current one, run at
// every start. The trial binary calls it once it has attached.
func Commit(dir, version string) error {
	return updateState(dir, func(s *state) {
		if s.Trial != nil && s.Trial.Version == version {
			s.Current, s.Trial, s.Attempts = s.Trial, nil, 0
		}
	})
}
