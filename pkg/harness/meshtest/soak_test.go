//go:build soak

package meshtest

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSoakNoFalseAlarms runs the 3-region mesh under steady relayed traffic
// while every core is kept busy by spinning goroutines (a superset of one
// node's CPU being saturated: in one process every node starves), and
// fails if any node ever sees another as not alive or a relay path down.
// Run it with `task soak` (POSTERN_SOAK sets the duration; default 10m).
func TestSoakNoFalseAlarms(t *testing.T) {
	d := 10 * time.Minute
	if v := os.Getenv("POSTERN_SOAK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("POSTERN_SOAK: %v", err)
		}
	}
	h, _ := threeRegions(t, nil)
	euw := h.MeshIndex("euw1-a")
	l := startLoad(t, h, euw, "shared", 2)
	var stop atomic.Bool
	var burners sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		burners.Add(1)
		go func() {
			defer burners.Done()
			x := 0
			for !stop.Load() {
				x++
			}
			_ = x
		}()
	}
	defer func() { stop.Store(true); burners.Wait() }()
	end := time.Now().Add(d)
	alarms := 0
	checks := 0
	for time.Now().Before(end) {
		for _, m := range h.Meshes() {
			st := m.Node.Status()
			for _, n := range st.Mesh.Nodes {
				if n.State != "alive" || !n.TunnelUp {
					alarms++
					t.Logf("%s: %s sees %s %s (tunnel up %v)", time.Now().Format(time.TimeOnly), m.ID, n.ID, n.State, n.TunnelUp)
				}
			}
		}
		checks++
		time.Sleep(200 * time.Millisecond)
	}
	rs := l.finish()
	failed := 0
	for _, r := range rs {
		if !r.ok {
			failed++
		}
	}
	t.Logf("soak %v: %d checks of 6 nodes, %d alarms, %d requests, %d failed", d, checks, alarms, len(rs), failed)
	if alarms > 0 || failed > 0 {
		t.Errorf("got %d false alarms and %d failed requests, want none", alarms, failed)
	}
}
