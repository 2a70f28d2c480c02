#!/usr/bin/env bash
# Installs the core and every emulator plugin of this repository into the current Python.
# Usage: scripts/python-packages.sh [--with-test-tools]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
extra=""
if [[ "${1:-}" == "--with-test-tools" ]]; then
    extra="[test]"
fi
args=(-e "$here$extra")
for plugin in "$here"/plugins/*/; do
    [[ -f "$plugin/pyproject.toml" ]] && args+=(-e "$plugin")
done
"$python" -m pip install -q --disable-pip-version-check --root-user-action=ignore "${args[@]}"
