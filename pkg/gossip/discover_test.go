package gossip

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// seedList is a discovery that answers with the addresses it holds, like
// an EC2 tag lookup that lists every node, this one included.
type seedList struct {
	mu    sync.Mutex
	addrs []string
	calls int
}

func (s *seedList) discover(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.addrs) == 0 {
		return nil, errors.New("no instances yet")
	}
	return append([]string(nil), s.addrs...), nil
}

func (s *seedList) add(a string) {
	s.mu.Lock()
	s.addrs = append(s.addrs, a)
	s.mu.Unlock()
}

// TestDiscoveredSeeds: nodes with no seeds of their own find each other
// through a discovery that lists every node (themselves included); the
// first node, which finds only itself, starts alone and is joined by the
// others.
func TestDiscoveredSeeds(t *testing.T) {
	list := &seedList{}
	withDiscovery := func(c *Config) { c.Discover = list.discover }
	a := newNode(t, "a", nil, withDiscovery)
	if n, err := a.Join(t.Context()); err != nil || n != 0 {
		t.Fatalf("the first node's join with nothing found: got %d, %v; want to start alone", n, err)
	}
	list.add(a.Addr())
	if n, err := a.Join(t.Context()); err != nil || n != 0 {
		t.Fatalf("the first node, finding only itself: got %d, %v; want to start alone", n, err)
	}
	b := newNode(t, "b", nil, withDiscovery)
	list.add(b.Addr())
	if _, err := b.Join(t.Context()); err != nil {
		t.Fatalf("b joins through discovery: %v", err)
	}
	c := newNode(t, "c", nil, withDiscovery)
	if _, err := c.Join(t.Context()); err != nil {
		t.Fatalf("c joins through discovery: %v", err)
	}
	for _, n := range []*Cluster{a, b, c} {
		waitFor(t, waitLong, n.LocalID()+" sees all three", func() bool {
			_, okA := member(n, "a")
			_, okB := member(n, "b")
			_, okC := member(n, "c")
			return okA && okB && okC
		})
	}
}
