#!/usr/bin/env bash
# Builds the server's container image from Debian packages, with no container registry involved:
#   1. wheels of the core, every plugin and their Python dependencies (pip, from this clone);
#   2. a Debian bookworm root filesystem made by mmdebstrap from this machine's own apt sources (the same mirror,
#      and its non-free component for dynamips), holding Python, vpcs, qemu, dynamips and the tools the plugins
#      call, with the wheels installed into /opt/gns3 and the entry point deploy/container/entrypoint.py;
#   3. `docker import` of that tree into the local Docker Engine (DOCKER_HOST, or the standard socket).
# Usage (as root):  deploy/container/build-image.sh [TAG]        default TAG: gns3core/server:<version>
# Environment: BUILD_DIR (default build/container), APT_SOURCES (default /etc/apt/sources.list.d/debian.sources),
#              NO_IMPORT=1 to stop after writing BUILD_DIR/rootfs.tar, REUSE_ROOTFS=1 to import the
#              BUILD_DIR/rootfs.tar of an earlier run instead of building it again.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$here"
version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' gns3core/__init__.py)"
tag="${1:-gns3core/server:$version}"
build="${BUILD_DIR:-$here/build/container}"
sources="${APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}"
started=$(date +%s)

build_rootfs() {
    if ! command -v mmdebstrap >/dev/null 2>&1; then
        echo "==> installing mmdebstrap (apt)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q mmdebstrap >/dev/null
    fi
    if [[ ! -f "$sources" ]]; then
        echo "No apt sources file at $sources: set APT_SOURCES to a deb822 .sources file whose Components" \
             "include main and non-free (dynamips)" >&2
        exit 1
    fi
    if ! grep -Eq '^Components:.*\bnon-free\b' "$sources"; then
        echo "$sources has no non-free component, so dynamips cannot be installed:" \
             "run plugins/gns3-dynamips/install-dynamips.sh first, or set APT_SOURCES" >&2
        exit 1
    fi

    rm -rf "$build"
    mkdir -p "$build/wheels" "$build/files"
    echo "==> building wheels of the core and the plugins into $build/wheels"
    python3 -m venv "$build/venv"
    "$build/venv/bin/python" -m pip wheel -q --disable-pip-version-check --wheel-dir "$build/wheels" ./ ./plugins/*/
    install -m 0755 deploy/container/entrypoint.py "$build/files/gns3-entrypoint"
    local plugins=()
    local plugin
    for plugin in plugins/*/; do
        plugins+=("$(basename "$plugin")")
    done

    echo "==> making the Debian root filesystem with mmdebstrap ($sources)"
    local packages=python3,python3-venv,vpcs,qemu-system-x86,qemu-utils,dynamips,iproute2,util-linux,procps
    packages+=,curl,ca-certificates,cpulimit,tcpdump
    mmdebstrap --variant=minbase --components=main,non-free --include="$packages" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --customize-hook='mkdir -p "$1/tmp/wheels"' \
        --customize-hook="copy-in $build/wheels/. /tmp/wheels" \
        --customize-hook="copy-in $build/files/gns3-entrypoint /usr/local/bin" \
        --customize-hook='chroot "$1" python3 -m venv /opt/gns3' \
        --customize-hook="chroot \"\$1\" /opt/gns3/bin/pip install -q --no-index --no-cache-dir \
            --disable-pip-version-check --find-links /tmp/wheels gns3core ${plugins[*]}" \
        --customize-hook='rm -rf "$1/tmp/wheels"; mkdir -p "$1/var/lib/gns3" "$1/etc/gns3" "$1/run/gns3"' \
        bookworm "$build/rootfs.tar" "$sources"
    echo "==> root filesystem: $build/rootfs.tar ($(du -h "$build/rootfs.tar" | cut -f1)," \
         "$(( $(date +%s) - started )) s)"
}

if [[ "${REUSE_ROOTFS:-}" == "1" && -s "$build/rootfs.tar" ]]; then
    echo "==> reusing $build/rootfs.tar"
else
    build_rootfs
fi
if [[ "${NO_IMPORT:-}" == "1" ]]; then
    exit 0
fi
echo "==> importing it as $tag"
docker import \
    -c 'ENTRYPOINT ["/usr/local/bin/gns3-entrypoint"]' \
    -c 'ENV PATH=/opt/gns3/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'VOLUME ["/var/lib/gns3"]' \
    -c 'EXPOSE 8000' \
    -c "LABEL org.opencontainers.image.title=gns3core-server org.opencontainers.image.version=$version" \
    "$build/rootfs.tar" "$tag" >/dev/null
size=$(docker image inspect --format '{{.Size}}' "$tag")
echo "==> $tag: $((size / 1024 / 1024)) MiB, $(( $(date +%s) - started )) s in all"
