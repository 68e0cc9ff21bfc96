#!/bin/bash
# The subset of the official image's healthcheck.sh that the platform uses: `--connect` succeeds once
# the server accepts TCP connections (it only listens after initialisation has finished).
[[ "${1:-}" == "--connect" ]] || { echo "usage: healthcheck.sh --connect" >&2; exit 2; }
exec 3<>/dev/tcp/127.0.0.1/3306 && exec 3>&-
