package meshnode

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/postern/postern/pkg/gossip"
)

// ReadyCheck is one condition of a node's readiness.
type ReadyCheck struct {
	// Name is "serving", "catalog", "wireguard", "gossip" or "auth_keys".
	Name string `json:"name"`
	// OK reports whether the condition holds.
	OK bool `json:"ok"`
	// Detail says what was seen.
	Detail string `json:"detail"`
}

// Ready reports whether the node should get traffic: Run is serving and
// not stopping, the catalogue is loaded, the WireGuard device is up, the
// gossip has reached another node when seeds are configured, and the auth
// functions' keys were fetched when any app needs them. It also returns
// each check, for /readyz.
func (n *Node) Ready() (bool, []ReadyCheck) {
	checks := []ReadyCheck{{Name: "serving", OK: n.serving.Load(), Detail: "listeners up, not draining"}}
	cat := n.catalog.Current()
	cd := fmt.Sprintf("%d apps, hash %s", len(cat.Apps()), cat.Hash())
	if n.catalog.Stats().Failing {
		cd += "; the file on disk failed to load (the catalogue in force stays)"
	}
	checks = append(checks, ReadyCheck{Name: "catalog", OK: true, Detail: cd})
	port := n.wg.ListenPort()
	checks = append(checks, ReadyCheck{Name: "wireguard", OK: port != 0, Detail: fmt.Sprintf("listening on UDP port %d", port)})
	if n.mesh != nil {
		alive := 0
		for _, m := range n.mesh.cluster.Members() {
			if m.Meta.ID != n.cfg.ID && m.State == gossip.StateAlive {
				alive++
			}
		}
		ok := alive > 0 || len(n.mesh.cfg.Seeds) == 0
		checks = append(checks, ReadyCheck{Name: "gossip", OK: ok, Detail: fmt.Sprintf("%d other nodes alive, %d seeds", alive, len(n.mesh.cfg.Seeds))})
	}
	ak := ReadyCheck{Name: "auth_keys", OK: true, Detail: "no app needs sign-in keys"}
	if n.authCfg != nil && hasPreAuthApp(cat) {
		ak.OK = n.authCfg.Verifier.HasKeys()
		ak.Detail = "fetched from " + n.authCfg.AuthURL + "/.well-known/jwks.json"
		if !ak.OK {
			ak.Detail = "not fetched yet from " + n.authCfg.AuthURL + "/.well-known/jwks.json"
		}
	}
	checks = append(checks, ak)
	ready := true
	for _, c := range checks {
		ready = ready && c.OK
	}
	return ready, checks
}

// serveReady answers /readyz: 200 when ready, else 503, with one line
// per check.
func (n *Node) serveReady(w http.ResponseWriter, _ *http.Request) {
	ready, checks := n.Ready()
	var b strings.Builder
	for _, c := range checks {
		state := "ok"
		if !c.OK {
			state = "FAIL"
		}
		fmt.Fprintf(&b, "%s %s: %s\n", state, c.Name, c.Detail)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	w.Write([]byte(b.String()))
}
