// Package policy decides, for every request to a pre-authenticated app,
// whether the signed-in user may have it: who (users, groups, app roles),
// which part of the app (path rules, longest prefix wins), with which
// authentication contexts (acrs), from where (source CIDRs) and how long
// after sign-in (maximum session age).
//
// It sits on the mesh node's request path right after the app cookie is
// verified (pkg/session) and before the request enters the tunnel. The
// catalogue (pkg/catalog) builds one [Policy] per app when it loads, so a
// request costs a path normalisation and a few map lookups, with no
// parsing. The package is pure: no I/O, no goroutines, no clock of its own.
//
// # Path normalisation
//
// Path rules are matched against the path as the backend will see it, so
// that no spelling of a path escapes its rule. [Normalize] takes the raw
// request target (escaped form, as received) and:
//
//  1. refuses a target that does not start with "/" (a full URL
//     "http://host/admin", an authority or "*" form), any "#", raw bytes
//     outside printable ASCII (controls, space, UTF-8) and raw backslashes;
//  2. drops the query (from the first "?");
//  3. decodes percent-escapes of unreserved characters (letters, digits,
//     "-", ".", "_", "~"), so "/%61dmin" is "/admin" and "%2e%2e" is "..";
//     refuses encoded "/" and "\" ("%2f", "%5c"), encoded controls
//     ("%00"-"%1f", "%7f"), an encoded "%" that starts another escape
//     ("%2561", double encoding) and invalid escapes; keeps every other
//     escape, with upper-case hex;
//  4. strips ";" path parameters from every segment ("/admin;x" is
//     "/admin", "/..;/admin" is "/../admin"), as servlet containers do;
//  5. collapses repeated slashes ("//admin" is "/admin");
//  6. removes "." segments and resolves ".." segments; a ".." above the
//     root is refused;
//  7. lower-cases ASCII letters when the app's paths are case-insensitive
//     (path_case: insensitive), so "/Admin" meets the rule on "/admin".
//
// A trailing slash is kept. Rule prefixes are normalised the same way.
// A prefix matches whole segments: "/admin" covers "/admin" and
// "/admin/x", not "/administrator"; "/" covers everything.
package policy
