package edgetest

import (
	"net/http"
	"strings"
)

// WSKey is the Sec-WebSocket-Key of the tables' handshakes (RFC 6455
// §1.3's example).
const WSKey = "dGhlIHNhbXBsZSBub25jZQ=="

// WebSocket is the request line and headers of a well-formed WebSocket
// handshake to /ws, without Host, each line ending in CRLF.
const WebSocket = "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + WSKey + "\r\n"

// UpgradeCase is a request that asks for an upgrade the mesh refuses:
// the edge must answer 400 and the backend must read nothing.
type UpgradeCase struct {
	Name string
	// Head is the request line and headers, each line ending in CRLF,
	// without Host (the runner replaces "{host}" with the app's host, adds
	// Host and, where needed, the app cookie, then the blank line and
	// Body).
	Head string
	Body string
}

// UpgradeCases are the refused upgrades: h2c in every form, other
// protocols, malformed WebSocket handshakes that could hide another
// protocol, and CONNECT.
var UpgradeCases = []UpgradeCase{
	{"h2c with settings", "GET /admin HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n", ""},
	{"h2c without settings", "GET /public HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n", ""},
	{"H2C in capitals", "GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: H2C\r\n", ""},
	{"websocket then h2c in one header", "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket, h2c\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + WSKey + "\r\n", ""},
	{"two Upgrade headers", WebSocket + "Upgrade: h2c\r\n", ""},
	{"TLS upgrade", "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: TLS/1.2\r\n", ""},
	{"custom protocol", "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: raw-tcp\r\n", ""},
	{"websocket plus HTTP2-Settings", WebSocket + "HTTP2-Settings: AAMAAABk\r\n", ""},
	{"HTTP2-Settings alone", "GET / HTTP/1.1\r\nHTTP2-Settings: AAMAAABk\r\n", ""},
	{"Connection upgrade without Upgrade", "GET / HTTP/1.1\r\nConnection: Upgrade\r\n", ""},
	{"Upgrade without Connection", "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + WSKey + "\r\n", ""},
	{"websocket by POST", "POST /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + WSKey + "\r\nContent-Length: 0\r\n", ""},
	{"websocket with a body", WebSocket + "Content-Length: 18\r\n", "GET /admin HTTP/1.1"[:18]},
	{"websocket chunked", WebSocket + "Transfer-Encoding: chunked\r\n", "0\r\n\r\n"},
	{"websocket version 8", "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: " + WSKey + "\r\n", ""},
	{"websocket without key", "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n", ""},
	{"websocket short key", "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAAA\r\n", ""},
	{"websocket over HTTP/1.0", "GET /ws HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + WSKey + "\r\n", ""},
	{"CONNECT", "CONNECT {host}:443 HTTP/1.1\r\n", ""},
}

// Smuggled is an HTTP/1.1 request a client writes on a connection after a
// WebSocket handshake, hoping the backend reads it as a request.
const Smuggled = "GET /admin HTTP/1.1\r\nHost: x\r\nX-Postern-User: evil\r\n\r\n"

// HostileHeaders are client headers that other proxies set and backends
// written for them trust; none may reach a backend, in any spelling. Each
// value is "evil".
var HostileHeaders = []string{
	"X-Forwarded-User", "x_forwarded_email", "X-FORWARDED-GROUPS", "X-Forwarded-Preferred-Username",
	"X-Forwarded-Access-Token", "X-Auth-Request-User", "x-auth-request-email", "X_Auth_Request_Groups",
	"X-Auth-Request-Preferred-Username", "X-Forwarded-Uri", "X-Forwarded-Path", "X-Original-URI", "X_Original_Url",
	"X-Envoy-Original-Path", "X-Envoy-Internal", "True-Client-IP", "true_client_ip", "CF-Connecting-IP", "cf_connecting_ip",
	"Cf-Access-Authenticated-User-Email", "Cf-Access-Jwt-Assertion", "Cf-Visitor", "X-Real-IP", "X_Real_Ip", "X-Client-IP",
	"X-Cluster-Client-Ip", "Fastly-Client-Ip", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Ssl",
	"X-Forwarded-Client-Cert", "X-Postern-User", "x_postern_groups", "X-Postern-Anything", "X-Postern-Assertion", "x_postern_assertion", "X-Amzn-Oidc-Identity",
	"X-Amzn-Oidc-Data", "X-Goog-Authenticated-User-Email", "X-Goog-Iap-Jwt-Assertion", "X-Ms-Client-Principal-Name",
	"X-Ms-Client-Principal", "X-Ms-Token-Aad-Id-Token", "Remote-User", "Remote-Groups", "X-Remote-User", "X_Remote_User",
	"X-Webauth-User", "X-Pomerium-Jwt-Assertion", "X-Authentik-Username", "X-Consumer-Username", "X-Arr-Ssl",
	"X-Ssl-Client-Verify", "X-Client-Cert", "Ssl-Client-Cert", "X-User", "X-Rewrite-Url", "Http2_Settings",
}

// SetHostile adds every HostileHeaders entry, with value "evil", to a
// request head being built.
func SetHostile(b *strings.Builder) {
	for _, h := range HostileHeaders {
		b.WriteString(h + ": evil\r\n")
	}
}

// Leaked returns the hostile headers h still carries, in any spelling
// (case ignored, "_" read as "-"), except those named in allowed.
func Leaked(h http.Header, allowed ...string) []string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "_", "-") }
	var out []string
	for k, v := range h {
		n := norm(k)
		skip := false
		for _, a := range allowed {
			skip = skip || strings.EqualFold(k, a)
		}
		for _, hh := range HostileHeaders {
			if !skip && norm(hh) == n && len(v) > 0 && v[0] == "evil" {
				out = append(out, k)
			}
		}
	}
	return out
}

// IISPolicy is the policy of the app PathCases run against, as catalogue
// lines of an app entry: IIS mode; users with the role SmartMoney.User
// (as the development provider's alice) may use the app, /admin needs
// SmartMoney.Admin, /admin/public is open to all users again.
const IISPolicy = `    path_case: insensitive
    policy:
      allow: { roles: ["SmartMoney.User", "SmartMoney.Admin"] }
      paths:
        - prefix: /admin
          allow: { roles: ["SmartMoney.Admin"] }
        - prefix: /admin/public
`

// PathCase is a raw request target sent by a user with only
// SmartMoney.User to
// an app with IISPolicy, and the status the edge must answer: 200 (and the
// backend reads exactly Target), or 400 or 403 (and the backend reads
// nothing).
type PathCase struct {
	Target string
	Want   int
}

// PathCases are the spellings of /admin that Windows, a servlet container
// or Go resolve to /admin, and a few that are fine.
var PathCases = []PathCase{
	{"/admin", 403},
	{"/ADMIN/x", 403},
	{"/Admin/Public/../x", 400},
	{"/admin.", 400},
	{"/admin..", 400},
	{"/admin%20", 400},
	{"/admin%2E", 400},
	{"/admin.%20", 400},
	{"/admin./users", 400},
	{"/admin%20/users", 400},
	{"/admin::$DATA", 400},
	{"/admin:$DATA/x", 400},
	{"/admin%3A%3A%24DATA", 400},
	{"/ADMINI~1", 400},
	{"/adm%C4%B1n", 400},      // dotless i: upper-cases to I
	{"/%EF%BD%81dmin", 400},   // full-width a
	{"/admin%EF%BC%8Fx", 400}, // full-width solidus
	{"/admin;x", 403},
	{"/admin%3Bx", 403},
	{"/admin%3bx/y", 403},
	{"/admin/public;x/y", 403}, // /admin/public/y to Tomcat, under /admin to others
	{"/admin//public/y", 403},
	{"//admin", 403},
	{"/public/../admin", 400},
	{"/public/%2e%2e/admin", 400},
	{"/public/..;/admin", 400},
	{"/admin%00", 400},
	{"/admin%0d%0aX:%20y", 400},
	{"/admin%C2%85", 400},
	{"/%C0%AE%C0%AE/admin", 400},
	{"/admin%2fx", 400},
	{"/admin%5cx", 400},
	{"/x", 200},
	{"/Admin/Public/y", 200},
	{"/admin/public/y?z=1", 200},
	{"/caf%C3%A9", 200},
	{"/v1.2/file.txt", 200},
}
