// Package catalog reads, validates and serves the app catalogue: the one YAML
// file that lists the published apps (external host, internal URL, connector
// group, pre-authentication mode, timeouts, client headers passed through,
// Strict-Transport-Security, and for pre-authenticated apps the session
// lifetime, access policy and identity headers), the connector groups, and
// the home tenant whose groups and roles count in policies. Each pre-authenticated app's policy is compiled once,
// when the catalogue loads, into a [policy.Policy] on [App.Policy], so the
// mesh does no parsing per request.
//
// It sits at the very start of the request path: a mesh node maps the Host
// header of every incoming request to an [App] with [Catalog.AppByHost], and
// the auth functions validate sign-in requests against the same file. The
// package is pure (no network, no goroutines of its own): [Parse] turns bytes
// into an immutable [Catalog], and a [Store] rebuilds a whole new catalogue on
// change and swaps it in atomically, keeping the old one when the new file is
// invalid.
//
// Validation is strict. Unknown keys, wrong YAML types and impossible values
// are all reported together, in document order, each as an [*Error] carrying
// the file name and the line of the offending key or value.
package catalog
