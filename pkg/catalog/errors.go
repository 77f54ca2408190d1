package catalog

import (
	"errors"
	"fmt"

	"github.com/postern/postern/pkg/yamlcheck"
)

// Sentinel errors. Every [*Error] matches [ErrInvalid] with errors.Is, and also
// matches the one class below that describes it.
var (
	// ErrInvalid matches every problem found in a catalogue's content, as
	// opposed to an error reading the file.
	ErrInvalid = errors.New("invalid catalogue")

	// ErrSyntax means the file is not one YAML document holding a mapping.
	ErrSyntax = yamlcheck.ErrSyntax
	// ErrUnknownKey means a mapping has a key the schema does not define.
	ErrUnknownKey = yamlcheck.ErrUnknownKey
	// ErrType means a value has the wrong YAML type (say a list where a
	// string belongs).
	ErrType = yamlcheck.ErrType
	// ErrMissing means a required key is absent.
	ErrMissing = yamlcheck.ErrMissing
	// ErrValue means a value has the right type but an impossible content.
	ErrValue = errors.New("invalid value")
	// ErrDuplicate means an id or host is used twice, or a key is repeated.
	ErrDuplicate = yamlcheck.ErrDuplicate
	// ErrUnknownGroup means an app names a connector group that is not defined.
	ErrUnknownGroup = errors.New("unknown connector group")
	// ErrUnsupported means a recognised setting that this build cannot serve
	// yet, such as a pre-authentication mode whose support has not landed.
	ErrUnsupported = errors.New("not supported yet")
)

// Error is one problem in a catalogue, located by file name and line. Its
// message reads like a compiler's: "catalog.yaml:12: app "x": ...".
type Error struct {
	// File is the name given to [Parse] (the path for [Load]).
	File string
	// Line is the 1-based line of the offending key or value; 0 when the
	// problem has no line (an empty file).
	Line int
	// Msg describes the problem, prefixed with the app or group it is in.
	Msg string
	// Class is one of the sentinels above.
	Class error
}

// Error returns "file:line: msg".
func (e *Error) Error() string {
	if e.Line <= 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Unwrap returns the error's class.
func (e *Error) Unwrap() error { return e.Class }

// Is reports whether target is [ErrInvalid], which every Error matches.
func (e *Error) Is(target error) bool { return target == ErrInvalid }
