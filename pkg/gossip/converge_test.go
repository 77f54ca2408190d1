package gossip

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

func TestConvergence50(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mn memNet
		const n = 50
		// 50 nodes on 2 cores (under -race, or beside other builds) saturate
		// the CPU: probe and push-pull less often than LocalTiming, and give a
		// probe a whole second (every message is signed and verified), so that
		// the test measures convergence rather than flapping. The waits are
		// bounds for a broken cluster, not targets: the log has the figures.
		timing := func(c *Config) {
			c.Timing.ProbeInterval, c.Timing.ProbeTimeout = 2*time.Second, time.Second
			c.Timing.SuspicionMult, c.Timing.PushPullInterval = 4, 3*time.Second
		}
		seed := newNode(t, "n00", nil, timing, mn.opt(t))
		nodes := []*Cluster{seed}
		start := time.Now()
		for i := 1; i < n; i++ {
			nodes = append(nodes, newNode(t, nodeName(i), []string{seed.Addr()}, timing, mn.opt(t)))
		}
		joined := time.Since(start)
		membership := waitFor(t, 3*time.Minute, "all see 50 alive", func() bool {
			for _, c := range nodes {
				if aliveCount(c) != n {
					return false
				}
			}
			return true
		}, func() string {
			var counts []int
			for _, c := range nodes {
				counts = append(counts, aliveCount(c))
			}
			return fmt.Sprintf("alive counts %v", counts)
		})
		if err := seed.SetAttachments([]Attachment{{Connector: "k", Alive: true}}); err != nil {
			t.Fatal(err)
		}
		spread := waitFor(t, 3*time.Minute, "all see n00/k", func() bool {
			for _, c := range nodes {
				if !hasAttachment(c, "n00", "k", nil) {
					return false
				}
			}
			return true
		})
		t.Logf("50 nodes: joins issued in %v; all see 50 alive %v after the first join (%v after the last); attachment seen by all in %v",
			joined, joined+membership, membership, spread)
	})
}

func nodeName(i int) string {
	return string([]byte{'n', byte('0' + i/10), byte('0' + i%10)})
}
