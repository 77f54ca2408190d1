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
// Path rules are matched against the path as the backend will resolve it,
// so that no spelling of a path escapes its rule. [Normalize] takes the raw
// request target (escaped form, as received) and:
//
//  1. refuses a target that does not start with "/" (a full URL
//     "http://host/admin", an authority or "*" form), any "#", raw bytes
//     outside printable ASCII (controls, space, UTF-8) and raw backslashes;
//  2. drops the query (from the first "?");
//  3. percent-decodes the path, refusing encoded "/" and "\" ("%2f",
//     "%5c"), encoded controls ("%00"-"%1f", "%7f", and the C1 controls
//     U+0080-U+009F), decoded bytes that are not UTF-8 (overlong forms such
//     as "%c0%ae" included), an encoded "%" that starts another escape
//     ("%2561", double encoding) and invalid escapes; an encoded ";"
//     ("%3b") is read as the literal one;
//  4. refuses dot segments ("." and "..", also encoded or before a ";"
//     parameter): browsers resolve them before sending, and backends
//     disagree on them;
//  5. collapses repeated slashes ("//admin" is "/admin") and strips ";"
//     path parameters from every segment ("/admin;x" is "/admin"), as
//     servlet containers do;
//  6. in IIS mode (path_case: insensitive) refuses what Windows resolves
//     to another name: a segment ending in "." or " " ("/admin.",
//     "/admin%20"), an NTFS stream ("/admin::$DATA", any ":"), an 8.3
//     short name ("~" and a digit), and characters that Windows may read
//     as ASCII (whose case mapping is ASCII, such as "ı" and the Kelvin
//     sign, and full-width or look-alike "/", "\", "." and ":"); then folds
//     case as NTFS compares names (each character to the lower case of its
//     upper case), so "/Admin" meets the rule on "/admin".
//
// A trailing slash is kept. Rule prefixes are normalised the same way and
// may not contain ";" or "//". A prefix matches whole segments: "/admin"
// covers "/admin" and "/admin/x", not "/administrator"; "/" covers
// everything.
//
// A path with ";" or "//" has more than one reading: "/admin/public;x/y"
// is "/admin/public/y" to a servlet container but a resource under
// "/admin" to a backend that keeps the ";", and "/admin//public" likewise
// to one that does not collapse slashes. [Policy.Decide] allows such a
// path only if the rules allow every reading. A refused path is denied
// with [Decision.BadPath] set; the edge answers it with 400.
//
// # Tenants
//
// Users are named "<tenant id>/<object id>", so they belong to one tenant.
// Groups and app roles do not: in a multi-tenant sign-in a partner
// tenant's admins assign their own users roles and groups. An allow list's
// groups and roles therefore count only for identities of the home tenant
// ([Config.HomeTenant]) and of the tenants the allow list names
// ([Allow.Tenants]).
package policy
