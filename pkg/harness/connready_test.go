package harness

import (
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/pkg/testkit"
)

// TestConnectorReadinessFollowsAttachments: a connector's readiness (what
// its /readyz answers) is ready while it is attached, turns not ready,
// saying why, when its only mesh node dies, and ready again once the node
// is back and it has re-attached.
func TestConnectorReadinessFollowsAttachments(t *testing.T) {
	h := start(t, Options{})
	c := h.Connectors()[0].C
	testkit.WaitFor(t, 30*time.Second, "the connector ready", func() bool { return c.Readiness().Ready },
		func() string { return strings.Join(c.Readiness().NotReady, "; ") })
	began := time.Now()
	h.KillMesh(0)
	testkit.WaitFor(t, 2*time.Minute, "the connector not ready after its mesh node died", func() bool { return !c.Readiness().Ready })
	rd := c.Readiness()
	if len(rd.NotReady) == 0 || !strings.Contains(strings.Join(rd.NotReady, "; "), "not attached") {
		t.Errorf("not ready for %q, want it to say it is not attached", rd.NotReady)
	}
	t.Logf("not ready %v after the mesh node died", time.Since(began).Round(time.Millisecond))
	if err := h.StartMesh(0); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	testkit.WaitFor(t, 2*time.Minute, "the connector ready again after its mesh node returned", func() bool { return c.Readiness().Ready },
		func() string { return strings.Join(c.Readiness().NotReady, "; ") })
	t.Logf("ready again %v after the mesh node restarted", time.Since(began).Round(time.Millisecond))
	if c.Attached() == 0 {
		t.Error("ready with no attachment")
	}
}
