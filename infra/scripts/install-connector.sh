#!/bin/sh
# Install and enrol a Postern connector on a Linux host (Debian/Ubuntu or
# RHEL/Amazon Linux/Fedora, amd64 or arm64), in one line:
#
#   curl -fsSL https://DL/install-connector.sh | sudo POSTERN_ENROLL_TOKEN=TOKEN sh -s -- \
#     --mesh https://mesh.example.com --base-url https://DL/0.1.0 --allow 10.1.0.0/16:443
#
# It downloads postern-connectord for this host from --base-url, checks it
# against SHA256SUMS there, installs it with dpkg or rpm, writes --allow (the
# internal destinations the connector may reach; required, or --allow-any)
# to /etc/postern/connectord.env, enrols with the one-time token (taken from
# POSTERN_ENROLL_TOKEN so it never shows in the process list) and starts
# postern-connectord.service. Print "task connector:install-command" for the
# exact line.
set -eu

mesh="" base="" allow="" any="" dry=""
while [ $# -gt 0 ]; do
	case "$1" in
	--mesh) mesh="$2"; shift 2 ;;
	--base-url) base="$2"; shift 2 ;;
	--allow) allow="$2"; shift 2 ;;
	--allow-any) any=1; shift ;;
	--dry-run) dry=1; shift ;;
	*) echo "install-connector: unknown argument $1" >&2; exit 2 ;;
	esac
done
fail() { echo "install-connector: $*" >&2; exit 1; }
[ -n "$mesh" ] || fail "--mesh is required"
[ -n "$base" ] || fail "--base-url is required"
case "$mesh" in https://*) ;; *) fail "--mesh must be an https:// URL" ;; esac
[ -n "${POSTERN_ENROLL_TOKEN:-}" ] || fail "POSTERN_ENROLL_TOKEN is not set (mint one with: meshd token create --group G)"
[ -n "$allow" ] || [ -n "$any" ] || fail "--allow is required: the internal destinations the connector may reach, e.g. --allow 10.1.0.0/16:443,intranet.corp (or --allow-any: every destination but loopback, link-local and cloud metadata)"

case "$(uname -m)" in
x86_64 | amd64) debarch=amd64 rpmarch=x86_64 ;;
aarch64 | arm64) debarch=arm64 rpmarch=aarch64 ;;
*) fail "unsupported machine $(uname -m)" ;;
esac
version="${base##*/}"
if command -v dpkg >/dev/null 2>&1; then
	pkg="postern-connectord_${version}_${debarch}.deb" install="dpkg -i"
elif command -v rpm >/dev/null 2>&1; then
	pkg="postern-connectord-${version}-1.${rpmarch}.rpm" install="rpm -U --replacepkgs"
else
	fail "neither dpkg nor rpm found"
fi
if [ -n "$dry" ]; then
	echo "would install $base/$pkg with $install and enrol at $mesh"
	exit 0
fi
[ "$(id -u)" -eq 0 ] || fail "run as root (sudo)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
curl -fsSL -o "$tmp/$pkg" "$base/$pkg"
curl -fsSL -o "$tmp/SHA256SUMS" "$base/SHA256SUMS"
(cd "$tmp" && grep " $pkg\$" SHA256SUMS | sha256sum -c -) || fail "checksum of $pkg does not match SHA256SUMS"
$install "$tmp/$pkg"
if [ -n "$allow" ]; then
	printf 'CONNECTORD_ARGS=--allow %s\n' "$allow" >/etc/postern/connectord.env
else
	printf 'CONNECTORD_ARGS=--allow-any\n' >/etc/postern/connectord.env
fi
/usr/sbin/postern-connector-enroll --mesh "$mesh"
