#!/usr/bin/env bash
# Install everything (as root) and start the server on 127.0.0.1:8000 in local mode. Extra arguments go to gns3server.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/system-packages.sh"
bash "$here/python-packages.sh"
gns3server --list-plugins || true
exec gns3server --host 127.0.0.1 --port 8000 --local "$@"
