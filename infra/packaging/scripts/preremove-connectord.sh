#!/bin/sh
# Package pre-remove of postern-connectord: stop and disable the service.
# The enrolment in /var/lib/postern-connector is kept.
set -e
if [ -d /run/systemd/system ]; then
	systemctl disable --now postern-connectord.service >/dev/null 2>&1 || true
fi
