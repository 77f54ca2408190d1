package splice

import (
	"bytes"
	"io"
	"net"
	"testing"
)

func TestPipeCountsAndCloses(t *testing.T) {
	userA, a := net.Pipe()
	b, userB := net.Pipe()
	done := make(chan [2]int64)
	go func() {
		x, y := Pipe(a, b)
		done <- [2]int64{x, y}
	}()
	up := bytes.Repeat([]byte("u"), 100_000)
	go userA.Write(up)
	got := make([]byte, len(up))
	if _, err := io.ReadFull(userB, got); err != nil || !bytes.Equal(got, up) {
		t.Fatalf("a to b: %v", err)
	}
	go userB.Write([]byte("down"))
	small := make([]byte, 4)
	if _, err := io.ReadFull(userA, small); err != nil || string(small) != "down" {
		t.Fatalf("b to a: got %q, %v", small, err)
	}
	userA.Close() // one side ends: both close
	if _, err := userB.Read(small); err == nil {
		t.Error("b still open after a closed")
	}
	n := <-done
	if n[0] != int64(len(up)) || n[1] != 4 {
		t.Errorf("counts: got %v, want [%d 4]", n, len(up))
	}
}
