package sampleapp

import (
	"bytes"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

func TestWebSocketEcho(t *testing.T) {
	base := newServer(t, Config{})
	ctx := t.Context()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	if resp.StatusCode != 101 {
		t.Errorf("status: got %d, want 101", resp.StatusCode)
	}
	c.SetReadLimit(MaxWebSocketMessage)
	big := make([]byte, 1<<20+3)
	if _, err := Stream(5, int64(len(big))).Read(big); err != nil {
		t.Fatalf("fill: %v", err)
	}
	tests := []struct {
		name string
		typ  websocket.MessageType
		data []byte
	}{
		{"text", websocket.MessageText, []byte("hello, mesh")},
		{"empty text", websocket.MessageText, nil},
		{"binary", websocket.MessageBinary, []byte{0, 1, 2, 255}},
		{"large binary", websocket.MessageBinary, big},
		{"text again", websocket.MessageText, []byte("still there")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.Write(ctx, tt.typ, tt.data); err != nil {
				t.Fatalf("write: %v", err)
			}
			typ, got, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if typ != tt.typ {
				t.Errorf("message type: got %v, want %v", typ, tt.typ)
			}
			if !bytes.Equal(got, tt.data) {
				t.Errorf("echo: got %d bytes, want %d bytes equal to those sent", len(got), len(tt.data))
			}
		})
	}
	if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Errorf("close: %v", err)
	}
}

func TestWebSocketRequiresUpgrade(t *testing.T) {
	base := newServer(t, Config{})
	resp, _ := get(t, base+"/ws", nil)
	if resp.StatusCode < 400 || resp.StatusCode > 499 {
		t.Errorf("status of a plain GET /ws: got %d, want a 4xx", resp.StatusCode)
	}
}
