#!/usr/bin/env bash
# Install everything (as root) and start the server on 127.0.0.1:8000 in local mode. Extra arguments go to gns3server.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/system-packages.sh"
bash "$here/python-packages.sh"
export PATH="$here/../.venv/bin:$PATH"

# The Docker plugin needs a running engine. Where none answers (no init system starts one here), start dockerd
# without its own bridge and NAT rules: containers get their links from the server, never from docker0.
if command -v dockerd >/dev/null 2>&1 && [[ -z "${DOCKER_HOST:-}" ]] \
        && ! curl -sf --unix-socket /var/run/docker.sock http://localhost/_ping >/dev/null 2>&1; then
    echo "starting dockerd (log: /var/log/gns3-dockerd.log)"
    nohup dockerd --iptables=false --bridge=none >/var/log/gns3-dockerd.log 2>&1 &
    for _ in $(seq 1 100); do
        curl -sf --unix-socket /var/run/docker.sock http://localhost/_ping >/dev/null 2>&1 && break
        sleep 0.2
    done
fi

gns3server --list-plugins || true
exec gns3server --host 127.0.0.1 --port 8000 --local "$@"
