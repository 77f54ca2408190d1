package connector

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/postern/postern/pkg/backoff"
	"github.com/postern/postern/pkg/enroll"
	"github.com/postern/postern/pkg/update"
)

// AutoUpdateConfig configures the opt-in self-update of a connector.
type AutoUpdateConfig struct {
	// Updater checks the signed release manifest and stages a release
	// (required).
	Updater *update.Updater
	// Version is the running version (required).
	Version string
	// Every is how often to check for a release; zero means 6h.
	Every time.Duration
	// Jitter is the largest random delay added to each wait, so that the
	// connectors of a group do not all check (and queue for the slot) at
	// once; zero means Every/2.
	Jitter time.Duration
	// DrainTimeout bounds the drain before the restart; zero means 30s.
	DrainTimeout time.Duration
	// TrialTimeout is how long the new version has to attach before it
	// gives up and the next start rolls it back; the restart begins only
	// while the group's update slot has this, the drain and Margin left.
	// Zero means 2m.
	TrialTimeout time.Duration
	// Margin is the further time the slot must have left for a restart to
	// begin (the exec and the first attach); zero means 30s.
	Margin time.Duration
	// Alone lets the connector update when no other connector of its
	// group serves, leaving the group without service while it restarts;
	// false (the default) waits until another connector of the group is
	// attached, alive and not draining.
	Alone bool
	// Restart starts the installed binary again (which runs the staged
	// release on trial). On success it does not return (exec).
	Restart func() error
}

func (a *AutoUpdateConfig) defaults() error {
	if a.Updater == nil || a.Version == "" || a.Restart == nil {
		return errors.New("connector: auto-update: Updater, Version and Restart are required")
	}
	if a.Every <= 0 {
		a.Every = 6 * time.Hour
	}
	if a.Jitter <= 0 {
		a.Jitter = a.Every / 2
	}
	if a.DrainTimeout <= 0 {
		a.DrainTimeout = 30 * time.Second
	}
	if a.TrialTimeout <= 0 {
		a.TrialTimeout = 2 * time.Minute
	}
	if a.Margin <= 0 {
		a.Margin = 30 * time.Second
	}
	return nil
}

// AutoUpdate checks for a release every Every (plus jitter); when one is
// staged it asks the mesh for the group's update slot, which at most one
// connector of the group holds at a time across the whole mesh, and, once
// granted with enough of the slot left, drains and restarts into the new
// version. It returns when ctx ends, or with the error of a restart that
// failed.
func (c *Connector) AutoUpdate(ctx context.Context, cfg AutoUpdateConfig) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	wait := rand.N(cfg.Jitter + 1)
	for {
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
		wait = cfg.Every + rand.N(cfg.Jitter+1)
		m, err := cfg.Updater.Check(ctx)
		if err != nil {
			c.logger.Warn("update_check_failed", "error", err)
			continue
		}
		if m == nil {
			continue
		}
		if err := cfg.Updater.Stage(ctx, m); err != nil {
			c.logger.Warn("update_refused", "version", m.Version, "error", err)
			continue
		}
		c.logger.Info("update_staged", "version", m.Version, "running", cfg.Version)
		if err := c.restartInSlot(ctx, cfg, m.Version); err != nil {
			return err
		}
	}
}

// restartInSlot waits for the group's update slot, then drains and
// restarts. It returns nil when ctx ends first.
func (c *Connector) restartInSlot(ctx context.Context, cfg AutoUpdateConfig, version string) error {
	need := cfg.DrainTimeout + cfg.TrialTimeout + cfg.Margin
	for {
		slot, err := c.UpdateSlot(ctx, version, cfg.Alone)
		now := c.cfg.Now()
		switch {
		case err != nil:
			// Not attached yet, or the mesh did not answer: ask again soon.
			c.logger.Warn("update_slot_unavailable", "error", err)
			slot = enroll.UpdateSlotResponse{Start: now, Until: now.Add(slotRetry)}
		case slot.Granted && slot.Until.Sub(now) >= need:
			c.logger.Info("update_restart", "version", version, "slot_end", slot.Until)
			dctx, cancel := context.WithTimeout(ctx, cfg.DrainTimeout)
			if err := c.Drain(dctx); err != nil {
				c.logger.Warn("drain_incomplete", "error", err)
			}
			cancel()
			return fmt.Errorf("connector: restart into %s: %w", version, cfg.Restart())
		case slot.Granted:
			c.logger.Info("update_slot_too_short", "left", slot.Until.Sub(now))
		case slot.Waiting != "":
			c.logger.Info("update_waiting", "version", version, "reason", slot.Waiting)
		}
		if !backoff.Sleep(ctx, nextSlotWait(slot, now, need)) {
			return nil
		}
	}
}

// slotRetry is how soon a connector asks again for the update slot after
// the mesh did not answer (or it was not attached yet).
const slotRetry = 15 * time.Second

// nextSlotWait is how long to wait before asking again for the update
// slot after slot (held by another connector, too short, or a retry):
// until the slot ends, plus a random point early enough in the next one
// to leave need. A slot without a start counts as one of the default
// length.
func nextSlotWait(slot enroll.UpdateSlotResponse, now time.Time, need time.Duration) time.Duration {
	length := slot.Until.Sub(slot.Start)
	if slot.Start.IsZero() || length <= 0 {
		length = enroll.UpdateSlotLength
	}
	spread := min(length/2, length-need)
	return max(slot.Until.Sub(now), 0) + rand.N(max(spread, 1))
}

// CommitTrial keeps the version this process runs on trial once the
// connector is attached to a mesh node; it returns an error when it is
// not attached within timeout (the caller exits, and the next start rolls
// the version back). dir is the update directory.
func (c *Connector) CommitTrial(ctx context.Context, dir, version string, timeout time.Duration) error {
	deadline := c.cfg.Now().Add(timeout)
	for c.Attached() == 0 {
		if c.cfg.Now().After(deadline) {
			return fmt.Errorf("connector: version %s did not attach within %s: rolling back at the next start", version, timeout)
		}
		if !backoff.Sleep(ctx, 250*time.Millisecond) {
			return ctx.Err()
		}
	}
	if err := update.Commit(dir, version); err != nil {
		return err
	}
	c.logger.Info("update_committed", "version", version)
	return nil
}
