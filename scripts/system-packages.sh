#!/usr/bin/env bash
# Installs the emulator programs and tools from Debian (as root). Idempotent: quick when everything is there.
# Usage: scripts/system-packages.sh [--with-test-tools]
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

emulators=(vpcs qemu-system-x86 qemu-utils cpulimit curl)
# binutils assembles the IOU stand-in image; libc6-i386 lets ldd inspect 32-bit images; ncompress checks NVRAM LZC.
# jq: docs/quickstart.md's walkthrough (and its test) read the API's answers with it.
# strace: the fuzzing test (tests/fuzz) watches every file the server and its emulators write.
# mmdebstrap: tests/deploy build the server's container image (deploy/container/build-image.sh).
test_tools=(busybox-static cpio tshark tcpdump iproute2 wrk procps strace binutils libc6-i386 ncompress jq mmdebstrap)

want=("${emulators[@]}")
if [[ "${1:-}" == "--with-test-tools" ]]; then
    want+=("${test_tools[@]}")
fi

missing=()
for pkg in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    apt-get update -q
    apt-get install -y -q "${missing[@]}"
fi

# The Docker engine: without recommends it installs in well under a minute instead of nine.
if ! command -v dockerd >/dev/null 2>&1; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends docker.io
fi

# The Docker plugin's VNC consoles: an X virtual framebuffer and a VNC server (without recommends: no desktop).
if ! command -v Xvfb >/dev/null 2>&1 || ! command -v x11vnc >/dev/null 2>&1; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends xvfb x11vnc
fi

# Dynamips lives in Debian's non-free component.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -x "$here/plugins/gns3-dynamips/install-dynamips.sh" ]] || [[ -f "$here/plugins/gns3-dynamips/install-dynamips.sh" ]]; then
    bash "$here/plugins/gns3-dynamips/install-dynamips.sh"
fi
