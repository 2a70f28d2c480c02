#!/usr/bin/env bash
# Builds an offline Docker image from Debian's busybox-static, with no registry: a root filesystem of one static
# busybox and a link per applet, imported with `docker import` (the same image the tests use).
# Usage: scripts/docker-busybox-image.sh [NAME:TAG]        (default gns3/busybox:latest)
# The engine is the one `docker` talks to: set DOCKER_HOST for another one (e.g. the private test engine).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
image="${1:-gns3/busybox:latest}"
python="$here/.venv/bin/python"
[[ -x "$python" ]] || { echo "no virtual environment in $here/.venv: run scripts/python-packages.sh first" >&2; exit 1; }
command -v docker >/dev/null 2>&1 || { echo "the docker command is not installed (apt-get install -y docker.io)" >&2; exit 1; }
echo "==> building a busybox root filesystem and importing it as $image" >&2
"$python" -m gns3_docker.busybox_image | docker import -c 'CMD ["/bin/sh"]' -m "busybox root filesystem" - "$image"
echo "==> $image is ready; 'curl -s http://127.0.0.1:8000/v1/docker/images' lists it once the server runs" >&2
