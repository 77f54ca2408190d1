#!/bin/sh
# Package post-install for postern-connectord and postern-meshd: create the
# service users and reload systemd. The service is not started here:
# connectord needs an enrolment first, meshd its keys and certificate.
set -e
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
