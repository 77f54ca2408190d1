package enroll

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/pkg/wgkey"
)

// TestUpdateSlot: in each slot one connector of a group gets the group's
// update slot and every other connector of the group is refused until the
// next slot; another group's slot is its own; only the credential's own
// tunnel address may ask.
func TestUpdateSlot(t *testing.T) {
	e := newEnv(t, nil)
	a, b := newPub(t), newPub(t)
	credA, credB := issued(a)(e), issued(b)(e)
	slot := func(key *wgkey.Public, cred string) (UpdateSlotResponse, error) {
		e.remote.Store(nil)
		e.fromTunnel(*key)
		return e.client.UpdateSlot(t.Context(), cred, "1.2.0", false)
	}
	e.clock.Set(t0)
	ra, err := slot(&a, credA)
	if err != nil || !ra.Granted || !ra.Until.After(t0) || ra.Until.Sub(t0) > UpdateSlotLength {
		t.Fatalf("first connector: %+v, %v", ra, err)
	}
	if rb, err := slot(&b, credB); err != nil || rb.Granted {
		t.Fatalf("second connector in the same slot: %+v, %v; want refused", rb, err)
	}
	if ra2, err := slot(&a, credA); err != nil || ra2.Granted {
		t.Fatalf("the winner asking again: %+v, %v; want refused (one ask per slot)", ra2, err)
	}
	e.clock.Set(ra.Until.Add(time.Second))
	if rb, err := slot(&b, credB); err != nil || !rb.Granted {
		t.Fatalf("second connector in the next slot: %+v, %v", rb, err)
	}
	// Another group has its own slots.
	c := newPub(t)
	credC, _, _ := e.auth.IssueCredential("c-other", "other", c, time.Hour)
	if rc, err := slot(&c, credC); err != nil || !rc.Granted {
		t.Fatalf("another group: %+v, %v", rc, err)
	}
	// From outside the tunnel: refused.
	e.remote.Store(nil)
	_, err = e.client.UpdateSlot(t.Context(), credA, "1.2.0", false)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || ae.Code != CodeTunnelAddrMismatch {
		t.Fatalf("from loopback: got %v", err)
	}
}

// TestUpdateSlotWaitsForAnotherConnector: while no other connector of the
// group serves, the slot is refused with the reason, a retry soon, and
// nothing redeemed — so once another connector serves, the same slot is
// still there to be granted; a connector that asks to update alone gets it
// at once. The asker itself does not count as serving.
func TestUpdateSlotWaitsForAnotherConnector(t *testing.T) {
	var serving atomic.Int32
	var asked atomic.Value
	e := newEnv(t, func(c *Config) {
		c.Serving = func(group, except string) int {
			asked.Store(group + "/" + except)
			return int(serving.Load())
		}
	})
	a, b := newPub(t), newPub(t)
	credA, credB := issued(a)(e), issued(b)(e)
	slot := func(key *wgkey.Public, cred string, alone bool) UpdateSlotResponse {
		t.Helper()
		e.remote.Store(nil)
		e.fromTunnel(*key)
		r, err := e.client.UpdateSlot(t.Context(), cred, "1.2.0", alone)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	e.clock.Set(t0)
	r := slot(&a, credA, false)
	if r.Granted || !strings.Contains(r.Waiting, "no other connector of group") || !r.Until.After(t0) || r.Until.Sub(t0) > time.Minute {
		t.Fatalf("alone in the group: %+v; want refused, waiting, retry within a minute", r)
	}
	if got := asked.Load(); got == nil || !strings.HasSuffix(got.(string), "/"+connectorID(t, e, credA)) {
		t.Fatalf("Serving asked for %v; want the group without the asker", got)
	}
	serving.Store(1)
	if r := slot(&a, credA, false); !r.Granted || r.Waiting != "" {
		t.Fatalf("another connector serves: %+v; want granted (the wait burnt nothing)", r)
	}
	serving.Store(0)
	e.clock.Set(t0.Add(UpdateSlotLength + time.Second))
	if r := slot(&b, credB, true); !r.Granted {
		t.Fatalf("asked to update alone: %+v; want granted", r)
	}
}

// connectorID returns the connector id of credential cred.
func connectorID(t *testing.T, e *env, cred string) string {
	t.Helper()
	c, err := e.auth.VerifyCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	return c.ConnectorID
}
