package gossip

import (
	"testing"
	"time"
)

func TestConvergence50(t *testing.T) {
	const n = 50
	seed := newNode(t, "n00", nil)
	nodes := []*Cluster{seed}
	start := time.Now()
	for i := 1; i < n; i++ {
		nodes = append(nodes, newNode(t, nodeName(i), []string{seed.Addr()}))
	}
	joined := time.Since(start)
	membership := waitFor(t, 30*time.Second, "all see 50 alive", func() bool {
		for _, c := range nodes {
			if aliveCount(c) != n {
				return false
			}
		}
		return true
	})
	if err := seed.SetAttachments([]Attachment{{Connector: "k", Alive: true}}); err != nil {
		t.Fatal(err)
	}
	spread := waitFor(t, 30*time.Second, "all see n00/k", func() bool {
		for _, c := range nodes {
			if !hasAttachment(c, "n00", "k", nil) {
				return false
			}
		}
		return true
	})
	t.Logf("50 nodes: joins issued in %v; all see 50 alive %v after that; attachment seen by all in %v",
		joined, membership, spread)
}

func nodeName(i int) string {
	return string([]byte{'n', byte('0' + i/10), byte('0' + i%10)})
}
