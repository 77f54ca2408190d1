package sampleapp

import (
	"errors"
	"io"
	"net/http"

	"github.com/coder/websocket"
)

// MaxWebSocketMessage is the largest WebSocket message /ws echoes. Messages
// are echoed as a stream, frame by frame, so the limit bounds abuse rather
// than memory.
const MaxWebSocketMessage = 64 << 20

// serveWebSocket echoes every text and binary message back to the client
// with the same type, until the client closes the connection.
func (a *App) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		// Accept has already answered with an error status.
		a.logger.Debug("websocket accept failed", "err", err)
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(MaxWebSocketMessage)
	ctx := r.Context()
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			a.logWebSocketEnd(err)
			return
		}
		wr, err := c.Writer(ctx, typ)
		if err != nil {
			a.logWebSocketEnd(err)
			return
		}
		if _, err := io.Copy(wr, rd); err != nil {
			a.logWebSocketEnd(err)
			return
		}
		if err := wr.Close(); err != nil {
			a.logWebSocketEnd(err)
			return
		}
	}
}

func (a *App) logWebSocketEnd(err error) {
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway:
		return
	}
	if errors.Is(err, io.EOF) {
		return
	}
	a.logger.Debug("websocket session ended", "err", err)
}
