package harness

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
)

// TCPTarget is a TCP service on loopback standing in for an internal host
// behind a TCP app: it echoes, or runs the duplex transfer of
// TransferCheck. It serves until Close.
type TCPTarget struct {
	l    net.Listener
	wg   sync.WaitGroup
	conn sync.Map // net.Conn -> struct{}
}

// Target modes.
const (
	// TargetEcho echoes every byte back.
	TargetEcho = iota
	// TargetTransfer reads an 8-byte big-endian length N, then at once
	// sends N bytes of TransferData(N) and reads N bytes; after reading
	// them it sends their SHA-256.
	TargetTransfer
	// TargetSource reads 8-byte big-endian lengths N, one after the
	// other, and answers each with N bytes of TransferData(N).
	TargetSource
)

// StartTCPTarget listens on 127.0.0.1 and serves mode.
func StartTCPTarget(mode int) (*TCPTarget, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &TCPTarget{l: l}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.conn.Store(c, struct{}{})
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				defer t.conn.Delete(c)
				defer c.Close()
				switch mode {
				case TargetEcho:
					_, _ = io.Copy(c, c) // the echo ends when either side does
				case TargetSource:
					source(c)
				default:
					transfer(c)
				}
			}()
		}
	}()
	return t, nil
}

// Addr returns the target's host:port.
func (t *TCPTarget) Addr() string { return t.l.Addr().String() }

// Close stops the target and its connections and waits for them.
func (t *TCPTarget) Close() {
	t.l.Close()
	t.conn.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
	t.wg.Wait()
}

// TransferData returns the deterministic stream of n bytes that a
// transfer target sends.
func TransferData(n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{'p', 'o', 's', 't', 'e', 'r', 'n'}), n)
}

func source(c net.Conn) {
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		if _, err := io.Copy(c, TransferData(int64(binary.BigEndian.Uint64(hdr[:])))); err != nil {
			return
		}
	}
}

func transfer(c net.Conn) {
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	n := int64(binary.BigEndian.Uint64(hdr[:]))
	sent := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, TransferData(n))
		sent <- err
	}()
	h := sha256.New()
	if _, err := io.CopyN(h, c, n); err != nil {
		return
	}
	if <-sent != nil {
		return
	}
	_, _ = c.Write(h.Sum(nil)) // the client's checksum comparison reports a lost write
}

// TransferCheck runs the duplex transfer of n bytes each way over c
// against a transfer target, and checks both checksums.
func TransferCheck(c io.ReadWriter, n int64) error {
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(n))
	up := sha256.New()
	wrote := make(chan error, 1)
	go func() {
		if _, err := c.Write(hdr[:]); err != nil {
			wrote <- err
			return
		}
		_, err := io.Copy(io.MultiWriter(c, up), TransferData(n))
		wrote <- err
	}()
	down, want := sha256.New(), sha256.New()
	if _, err := io.CopyN(down, c, n); err != nil {
		return fmt.Errorf("read %d bytes: %w", n, err)
	}
	_, _ = io.Copy(want, TransferData(n)) // a hash never fails a write
	if err := <-wrote; err != nil {
		return fmt.Errorf("write %d bytes: %w", n, err)
	}
	var got [32]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		return fmt.Errorf("read the target's checksum: %w", err)
	}
	if string(got[:]) != string(up.Sum(nil)) {
		return fmt.Errorf("the target received other bytes than were sent")
	}
	if string(down.Sum(nil)) != string(want.Sum(nil)) {
		return fmt.Errorf("received other bytes than the target sent")
	}
	return nil
}

// TCPApp returns the catalogue entry of a TCP app id at host
// "<id>.localhost" reaching target, accepting the records API's Entra
// tokens (and command-line sign-ins) of callers with the API's app role
// or the SmartMoney.Admin role.
func TCPApp(id, target string) string {
	return fmt.Sprintf(`  - id: %s
    kind: tcp
    host: %s.localhost
    target: %s
    connector_group: hq
    preauth: entra
    bearer:
      entra: {audiences: ["%s"], versions: [2]}
    policy:
      allow: {roles: ["%s", "SmartMoney.Admin"]}
`, id, id, target, APIClientID, APIReadRole)
}
