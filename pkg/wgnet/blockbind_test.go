package wgnet

import (
	"testing"

	"golang.zx2c4.com/wireguard/conn"
)

// stubBind is a conn.Bind whose receive function returns 3 datagrams per
// call and whose Send accepts anything.
type stubBind struct{ conn.Bind }

func (stubBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	return []conn.ReceiveFunc{func(p [][]byte, sizes []int, _ []conn.Endpoint) (int, error) {
		for i := range 3 {
			sizes[i] = len(p[i])
		}
		return 3, nil
	}}, port, nil
}

func (stubBind) Send([][]byte, conn.Endpoint) error { return nil }

// TestBlockBindCountsPackets: the datagrams that pass are counted both
// ways; those the block drops are not.
func TestBlockBindCountsPackets(t *testing.T) {
	b := NewBlockBind(stubBind{})
	fns, _, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	bufs := make([][]byte, 4)
	if n, err := fns[0](bufs, make([]int, 4), make([]conn.Endpoint, 4)); n != 3 || err != nil {
		t.Fatalf("receive: got %d, %v", n, err)
	}
	if err := b.Send(bufs[:2], nil); err != nil {
		t.Fatal(err)
	}
	b.SetBlocked(true)
	if err := b.Send(bufs, nil); err != nil {
		t.Fatal(err)
	}
	if sent, received := b.Packets(); sent != 2 || received != 3 {
		t.Errorf("got %d sent, %d received; want 2 and 3", sent, received)
	}
}
