#!/bin/sh
# Package pre-remove of postern-meshd: stop and disable the service. The
# state in /var/lib/postern-meshd is kept.
set -e
if [ -d /run/systemd/system ]; then
	systemctl disable --now postern-meshd.service >/dev/null 2>&1 || true
fi
