package meshnode

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/postern/postern/pkg/backoff"
	"github.com/postern/postern/pkg/catalog"
)

// Readiness is what the admin endpoint's /readyz answers: whether the node
// can serve, and if not, why.
type Readiness struct {
	Ready bool `json:"ready"`
	// NotReady lists what is missing, empty when Ready.
	NotReady []string `json:"not_ready,omitempty"`
}

// Readiness reports whether the node can serve: it is serving and not
// draining, its catalogue is loaded, its WireGuard device is up, it has
// joined the cluster (when it has seeds) and proven a relay path to a live
// member (when there is one), and it holds the sign-in keys (when an app
// needs them). It does not wait for connectors: they attach to a node
// that is ready, often through the same load balancer.
func (n *Node) Readiness() Readiness {
	var why []string
	switch {
	case n.draining.Load():
		why = append(why, "draining: shutting down")
	case !n.serving.Load():
		why = append(why, "not serving yet")
	}
	cat := n.catalog.Current()
	if cat == nil {
		why = append(why, "no catalogue loaded")
	}
	if !n.wg.Up() {
		why = append(why, "WireGuard device down")
	}
	if n.mesh != nil {
		why = append(why, n.mesh.notReady()...)
	}
	if cat != nil && needsSignIn(cat) {
		switch {
		case n.auth == nil:
			why = append(why, "pre-authenticated apps in the catalogue but no auth URL configured")
		case !n.auth.Verifier.HasKeys():
			why = append(why, "sign-in keys (the auth functions' JWKS) not fetched yet")
		}
	}
	return Readiness{Ready: len(why) == 0, NotReady: why}
}

func needsSignIn(cat *catalog.Catalog) bool {
	for _, a := range cat.Apps() {
		if a.PreAuth != catalog.PreAuthPassthrough {
			return true
		}
	}
	return false
}

// serveReadyz answers 200 when the node is ready and 503 otherwise, with
// the Readiness as JSON.
func (n *Node) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	rd := n.Readiness()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !rd.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(rd)
}

// fetchSignInKeys fetches the auth functions' JWKS until it has them (or
// ctx ends), with jittered backoff from 250ms to 30s, so that the node turns ready
// without waiting for a first sign-in.
func (n *Node) fetchSignInKeys(ctx context.Context) {
	if n.auth == nil {
		return
	}
	bo := backoff.New(250*time.Millisecond, 30*time.Second)
	for !n.auth.Verifier.HasKeys() {
		err := n.auth.Verifier.Refresh(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		n.logger.Warn("sign_in_keys_fetch_failed", "error", err, "retry_in_ms", bo.Delay().Milliseconds())
		if !bo.Wait(ctx) {
			return
		}
	}
}
