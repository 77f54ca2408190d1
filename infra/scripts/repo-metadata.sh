#!/usr/bin/env bash
# Repository metadata for the .deb and .rpm packages of `task package`, so
# that hosts can install and update Postern with apt or dnf/yum:
#
#   infra/scripts/repo-metadata.sh dist/packages dist/repo [GPG_KEY_ID]
#
# writes dist/repo/apt (the .debs, Packages, Packages.gz, Release; with a
# GPG key id also InRelease and Release.gpg) and dist/repo/yum (the .rpms
# and repodata/). Tools: apt-ftparchive (Debian's apt-utils) and
# createrepo_c (Debian's createrepo-c), installed by .ci/run. Publish
# dist/repo as it is on any HTTPS location.
set -euo pipefail

pkgs="${1:?usage: repo-metadata.sh PACKAGES_DIR OUT_DIR [GPG_KEY_ID]}"
out="${2:?usage: repo-metadata.sh PACKAGES_DIR OUT_DIR [GPG_KEY_ID]}"
key="${3:-}"

shopt -s nullglob
debs=("$pkgs"/*.deb)
rpms=("$pkgs"/*.rpm)
if [ "${#debs[@]}" -eq 0 ] || [ "${#rpms[@]}" -eq 0 ]; then
	echo "repo-metadata: no .deb or no .rpm in $pkgs (run task package first)" >&2
	exit 1
fi

rm -rf "$out"
mkdir -p "$out/apt" "$out/yum"

# apt: a flat repository (deb [signed-by=...] https://HOST/apt ./).
cp "${debs[@]}" "$out/apt/"
(
	cd "$out/apt"
	apt-ftparchive packages . >Packages
	gzip -9nk Packages
	apt-ftparchive \
		-o APT::FTPArchive::Release::Origin=Postern \
		-o APT::FTPArchive::Release::Label=Postern \
		-o APT::FTPArchive::Release::Suite=stable \
		-o APT::FTPArchive::Release::Codename=stable \
		release . >Release
	if [ -n "$key" ]; then
		gpg --batch --yes --local-user "$key" --clearsign -o InRelease Release
		gpg --batch --yes --local-user "$key" --armor --detach-sign -o Release.gpg Release
	fi
)

# yum/dnf: repodata/ (baseurl=https://HOST/yum).
cp "${rpms[@]}" "$out/yum/"
createrepo_c --quiet --no-database "$out/yum" >/dev/null

echo "repo-metadata: $out/apt (${#debs[@]} packages), $out/yum (${#rpms[@]} packages)"
