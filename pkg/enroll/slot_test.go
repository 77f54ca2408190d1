package enroll

import (
	"errors"
	"net/http"
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
		return e.client.UpdateSlot(t.Context(), cred, "1.2.0")
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
	_, err = e.client.UpdateSlot(t.Context(), credA, "1.2.0")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || ae.Code != CodeTunnelAddrMismatch {
		t.Fatalf("from loopback: got %v", err)
	}
}
