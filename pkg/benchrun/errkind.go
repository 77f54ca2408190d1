package benchrun

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
)

// statusError is a non-2xx response; it matches ErrStatus.
type statusError struct{ code int }

func (e statusError) Error() string        { return ErrStatus.Error() + ": " + strconv.Itoa(e.code) }
func (e statusError) Is(target error) bool { return target == ErrStatus }

// ErrorKind names the kind of a failed request, the key of
// Result.ErrorsByKind: "status_NNN" for a non-2xx status, "short_body",
// "protocol", "timeout", "refused", "reset", "eof", "tls", "canceled",
// "websocket" or "other".
func ErrorKind(err error) string {
	var se statusError
	var ne net.Error
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var ra tls.RecordHeaderError
	switch {
	case errors.As(err, &se):
		return "status_" + strconv.Itoa(se.code)
	case errors.Is(err, ErrShortBody):
		return "short_body"
	case errors.Is(err, ErrProtocol):
		return "protocol"
	case errors.Is(err, ErrWebSocket):
		return "websocket"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &ra):
		return "tls"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "other"
}
