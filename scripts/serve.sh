#!/usr/bin/env bash
# Install everything (as root) and start the server on 127.0.0.1:8000 in local mode. Extra arguments go to gns3server.
# Each step is announced with "==>"; the server's own log is this terminal unless you add --log FILE.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
clone="$(cd "$here/.." && pwd)"
step() { printf '==> %s\n' "$*"; }

step "1/4 Debian packages: the emulators and their tools (scripts/system-packages.sh; apt prints its own output)"
bash "$here/system-packages.sh"
step "2/4 Python packages: the core and every plugin of this clone into the virtual environment $clone/.venv"
bash "$here/python-packages.sh"
export PATH="$clone/.venv/bin:$PATH"

# The Docker plugin needs a running engine. Where none answers (no init system starts one here), start dockerd
# without its own bridge and NAT rules: containers get their links from the server, never from docker0.
step "3/4 Docker Engine for the Docker plugin"
if ! command -v dockerd >/dev/null 2>&1; then
    echo "    dockerd is not installed: Docker nodes answer 409 until an engine runs (see docs/docker.md)"
elif [[ -n "${DOCKER_HOST:-}" ]]; then
    echo "    using DOCKER_HOST=$DOCKER_HOST"
elif curl -sf --unix-socket /var/run/docker.sock http://localhost/_ping >/dev/null 2>&1; then
    echo "    an engine already answers on /var/run/docker.sock"
else
    echo "    WARNING: starting a system-wide dockerd on /var/run/docker.sock for this machine (not only for this"
    echo "    server): it keeps running after the server stops; stop it with: kill \$(cat /var/run/docker.pid)"
    echo "    It runs with --iptables=false --bridge=none, so it adds no NAT rules and no docker0 bridge."
    echo "    Its log: /var/log/gns3-dockerd.log"
    nohup dockerd --iptables=false --bridge=none >/var/log/gns3-dockerd.log 2>&1 &
    for _ in $(seq 1 100); do
        curl -sf --unix-socket /var/run/docker.sock http://localhost/_ping >/dev/null 2>&1 && break
        sleep 0.2
    done
fi

step "4/4 gns3server on http://127.0.0.1:8000 (local mode); Ctrl-C stops it and every node it started"
echo "    installed plugins and their emulator programs:"
gns3server --list-plugins | sed 's/^/      /' || true
echo "    server log: this terminal (add --log FILE to write it to a file instead)"
echo "    projects, and each node's own log (vpcs.log, qemu.log, ...): ~/GNS3/projects/<project id>/project-files/"
echo "    (or [Server] projects_path of the configuration); uploaded images: ~/GNS3/images/"
exec gns3server --host 127.0.0.1 --port 8000 --local "$@"
