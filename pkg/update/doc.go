// Package update keeps an installed connector current, safely, when its
// operator opts in: it reads a release manifest signed with the Ed25519
// release key pinned at install, downloads the binary for this platform,
// checks its SHA-256 and size against the manifest, stages it in the
// connector's state directory, and on the next start runs it on trial. The
// trial version must attach to the mesh within a timeout to be kept
// (Commit); if it crashes or does not attach, the next start rolls back to
// the version that ran before and never tries that version again.
//
// It sits beside the data path: the connector checks every few hours,
// after a random delay, and restarts into a new version only after it has
// drained. A manifest is trusted only with a valid signature by a pinned
// key, and only for a version newer than the running one, so an old
// manifest replayed cannot downgrade a connector.
package update
