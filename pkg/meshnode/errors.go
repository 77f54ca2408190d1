package meshnode

import "errors"

// ErrAuthKeys marks a node that may not start because the auth functions'
// JWKS could not be fetched and verified while the catalogue has
// pre-authenticated apps (every sign-in would fail).
var ErrAuthKeys = errors.New("meshnode: sign-in keys unavailable")

// ErrClosed is Run's answer when Close ended the node, or came before Run.
var ErrClosed = errors.New("meshnode: node closed")
