#!/usr/bin/env bash
# Runs Docker Compose, whichever this machine has: the `docker compose`
# plugin (Compose v2) or the older `docker-compose` command (v1). Use it
# where a document says `docker compose`:
#
#   docker/compose.sh -f docker/compose.yaml up -d
set -euo pipefail
if docker compose version >/dev/null 2>&1; then
	exec docker compose "$@"
elif command -v docker-compose >/dev/null 2>&1; then
	exec docker-compose "$@"
fi
echo "compose.sh: neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed" >&2
exit 127
