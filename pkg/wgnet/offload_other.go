//go:build !linux

package wgnet

import "net"

// Without Linux's UDP_SEGMENT and UDP_GRO every datagram is a message of
// its own.

var gsoOOBSize, groOOBSize = 0, 0

func probeOffload(*net.UDPConn, bool) (gso, gro bool) { return false, false }

func putSegmentSize(oob []byte, _ int) []byte { return oob[:0] }

func segmentSize([]byte) int { return 0 }

func offloadRefused(error) bool { return false }
