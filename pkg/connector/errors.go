package connector

import "errors"

// ErrClosed is Run's answer when Close ended the connector, or came before
// Run.
var ErrClosed = errors.New("connector: closed")
