package upgrade

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const testKey = "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455 §1.3

func wsRequest() *http.Request {
	r := httptest.NewRequest("GET", "/ws", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", testKey)
	return r
}

func TestAcceptKey(t *testing.T) {
	if got, want := AcceptKey(testKey), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; got != want {
		t.Fatalf("got %q, want %q (RFC 6455 §1.3)", got, want)
	}
}

// TestCheckRequestHostile lists upgrade requests a client may try, and the
// few that must pass.
func TestCheckRequestHostile(t *testing.T) {
	tests := []struct {
		name string
		mod  func(r *http.Request)
		ok   bool
	}{
		{"plain GET", func(r *http.Request) { r.Header = http.Header{} }, true},
		{"websocket", func(r *http.Request) {}, true},
		{"WebSocket in any case", func(r *http.Request) {
			r.Header.Set("Upgrade", "WebSocket")
			r.Header.Set("Connection", "keep-alive, UPGRADE")
		}, true},
		{"h2c", func(r *http.Request) { r.Header.Set("Upgrade", "h2c") }, false},
		{"h2c with settings", func(r *http.Request) {
			r.Header.Set("Upgrade", "h2c")
			r.Header.Set("Connection", "Upgrade, HTTP2-Settings")
			r.Header.Set("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA")
		}, false},
		{"websocket plus HTTP2-Settings", func(r *http.Request) { r.Header.Set("HTTP2-Settings", "AAMAAABk") }, false},
		{"HTTP2-Settings alone", func(r *http.Request) { r.Header = http.Header{"Http2-Settings": {"AAMAAABk"}} }, false},
		{"two protocols", func(r *http.Request) { r.Header.Set("Upgrade", "websocket, h2c") }, false},
		{"two Upgrade lines", func(r *http.Request) { r.Header.Add("Upgrade", "h2c") }, false},
		{"TLS upgrade", func(r *http.Request) { r.Header.Set("Upgrade", "TLS/1.2") }, false},
		{"custom protocol", func(r *http.Request) { r.Header.Set("Upgrade", "postern-raw") }, false},
		{"websocket with suffix", func(r *http.Request) { r.Header.Set("Upgrade", "websocketx") }, false},
		{"Upgrade without Connection", func(r *http.Request) { r.Header.Del("Connection") }, false},
		{"Connection upgrade without Upgrade", func(r *http.Request) { r.Header.Del("Upgrade") }, false},
		{"POST handshake", func(r *http.Request) { r.Method = "POST" }, false},
		{"handshake with a body", func(r *http.Request) { r.ContentLength = 5 }, false},
		{"handshake chunked", func(r *http.Request) { r.TransferEncoding = []string{"chunked"} }, false},
		{"HTTP/1.0", func(r *http.Request) { r.ProtoMinor = 0 }, false},
		{"HTTP/2", func(r *http.Request) { r.ProtoMajor, r.ProtoMinor = 2, 0 }, false},
		{"version 8", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") }, false},
		{"no version", func(r *http.Request) { r.Header.Del("Sec-WebSocket-Version") }, false},
		{"no key", func(r *http.Request) { r.Header.Del("Sec-WebSocket-Key") }, false},
		{"short key", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAA") }, false},
		{"two keys", func(r *http.Request) { r.Header.Add("Sec-WebSocket-Key", testKey) }, false},
		{"key not base64", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "!!!!!!!!!!!!!!!!!!!!!!==") }, false},
		{"CONNECT", func(r *http.Request) { r.Header = http.Header{}; r.Method = "CONNECT" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := wsRequest()
			tt.mod(r)
			err := CheckRequest(r)
			if tt.ok != (err == nil) {
				t.Fatalf("got %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrRefused) {
				t.Fatalf("got %v, want %v", err, ErrRefused)
			}
		})
	}
}

func TestCheckResponse(t *testing.T) {
	good := func() *http.Response {
		return &http.Response{StatusCode: 101, Header: http.Header{
			"Upgrade": {"websocket"}, "Connection": {"Upgrade"}, "Sec-Websocket-Accept": {AcceptKey(testKey)}}}
	}
	tests := []struct {
		name string
		req  func() *http.Request
		mod  func(*http.Response)
		ok   bool
	}{
		{"good", wsRequest, func(*http.Response) {}, true},
		{"200 to a plain GET", func() *http.Request { return httptest.NewRequest("GET", "/", nil) }, func(r *http.Response) { r.StatusCode = 200 }, true},
		{"101 unasked", func() *http.Request { return httptest.NewRequest("GET", "/", nil) }, func(*http.Response) {}, false},
		{"wrong accept", wsRequest, func(r *http.Response) { r.Header.Set("Sec-Websocket-Accept", AcceptKey("x")) }, false},
		{"no accept", wsRequest, func(r *http.Response) { r.Header.Del("Sec-Websocket-Accept") }, false},
		{"switches to h2c", wsRequest, func(r *http.Response) { r.Header.Set("Upgrade", "h2c") }, false},
		{"no Connection", wsRequest, func(r *http.Response) { r.Header.Del("Connection") }, false},
		{"101 to h2c", func() *http.Request {
			r := wsRequest()
			r.Header.Set("Upgrade", "h2c")
			return r
		}, func(*http.Response) {}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := good()
			tt.mod(resp)
			err := CheckResponse(tt.req(), resp)
			if tt.ok != (err == nil) {
				t.Fatalf("got %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// frame builds a client frame: b0 is FIN|RSV|opcode, the payload is masked
// with a zero key (the guard does not look at payloads).
func frame(b0 byte, payload []byte) []byte {
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n <= 0xffff:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	out = append(out, 0, 0, 0, 0)
	return append(out, payload...)
}

type sink struct {
	bytes.Buffer
	closed bool
}

func (s *sink) Read([]byte) (int, error) { return 0, nil }
func (s *sink) Close() error             { s.closed = true; return nil }

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestGuardHostile writes streams a client may send after a WebSocket
// handshake and checks what reaches the backend.
func TestGuardHostile(t *testing.T) {
	text := frame(0x81, []byte("hello"))
	big := frame(0x82, bytes.Repeat([]byte{'x'}, 70000))
	mid := frame(0x82, bytes.Repeat([]byte{'y'}, 300))
	closeF := frame(0x88, []byte{3, 232})
	smuggled := []byte("GET /admin HTTP/1.1\r\nHost: app\r\nX-Postern-User: evil\r\n\r\n")
	tests := []struct {
		name   string
		ext    bool
		stream []byte
		passed int // bytes that must reach the backend; -1 means all, no error
	}{
		{"text, binary, ping, pong, close", false, join(text, mid, big, frame(0x89, nil), frame(0x8a, []byte("p")), closeF), -1},
		{"fragmented message", false, join(frame(0x01, []byte("a")), frame(0x89, nil), frame(0x00, []byte("b")), frame(0x80, []byte("c"))), -1},
		{"compressed frame with an extension", true, frame(0xc1, []byte("z")), -1},
		{"raw HTTP request", false, smuggled, 0},
		{"HTTP request after a frame", false, join(text, smuggled), len(text)},
		{"HTTP request after close", false, join(text, closeF, smuggled), len(text) + len(closeF)},
		{"frame after close", false, join(closeF, text), len(closeF)},
		{"unmasked frame", false, []byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}, 1},
		{"reserved opcode 3", false, frame(0x83, nil), 0},
		{"reserved opcode 11", false, frame(0x8b, nil), 0},
		{"RSV1 without an extension", false, frame(0xc1, []byte("z")), 0},
		{"RSV2 without an extension", false, frame(0xa1, []byte("z")), 0},
		{"continuation first", false, frame(0x80, []byte("c")), 0},
		{"new message inside a fragmented one", false, join(frame(0x01, []byte("a")), frame(0x81, []byte("b"))), len(frame(0x01, []byte("a")))},
		{"fragmented ping", false, frame(0x09, nil), 0},
		{"ping over 125 bytes", false, frame(0x89, bytes.Repeat([]byte{'p'}, 126)), 1},
		{"non-minimal 16-bit length", false, []byte{0x81, 0x80 | 126, 0, 5, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'}, 3},
		{"non-minimal 64-bit length", false, []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0}, 9},
		{"length over 2^63", false, []byte{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, 2},
		{"h2c preface", false, []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0},
	}
	for _, tt := range tests {
		for _, chunk := range []int{0, 1, 3} { // whole, byte by byte, in threes
			name := tt.name
			if chunk > 0 {
				name += " in pieces of " + string(rune('0'+chunk))
			}
			t.Run(name, func(t *testing.T) {
				s := &sink{}
				g := Guard(s, tt.ext)
				var err error
				if chunk == 0 {
					_, err = g.Write(tt.stream)
				} else {
					for i := 0; i < len(tt.stream) && err == nil; i += chunk {
						_, err = g.Write(tt.stream[i:min(i+chunk, len(tt.stream))])
					}
				}
				if tt.passed < 0 {
					if err != nil || !bytes.Equal(s.Bytes(), tt.stream) {
						t.Fatalf("got %v and %d of %d bytes, want all passed", err, s.Len(), len(tt.stream))
					}
					return
				}
				if !errors.Is(err, ErrFrame) {
					t.Fatalf("got %v, want %v", err, ErrFrame)
				}
				if s.Len() != tt.passed || !bytes.Equal(s.Bytes(), tt.stream[:tt.passed]) {
					t.Fatalf("backend got %d bytes %q, want the first %d", s.Len(), s.Bytes(), tt.passed)
				}
				if _, err := g.Write(text); !errors.Is(err, ErrFrame) || s.Len() != tt.passed {
					t.Fatalf("write after a violation: got %v, %d bytes passed", err, s.Len())
				}
				if strings.Contains(s.String(), "GET /admin") {
					t.Fatal("the smuggled request reached the backend")
				}
			})
		}
	}
}
