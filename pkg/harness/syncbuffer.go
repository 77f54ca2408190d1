package harness

import "github.com/postern/postern/pkg/testkit"

// SyncBuffer is a bytes.Buffer safe for concurrent use: a logger or a
// child process writes while a test reads. It is testkit's, named here for
// the harness's callers.
type SyncBuffer = testkit.SyncBuffer
