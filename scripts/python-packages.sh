#!/usr/bin/env bash
# Creates the virtual environment .venv inside this clone (once) and installs the core and every emulator plugin of
# this repository into it, in editable mode. The system Python is left alone.
# Usage: scripts/python-packages.sh [--with-test-tools]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$here/.venv"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "==> creating the virtual environment $venv"
    "${PYTHON:-python3}" -m venv "$venv"
fi
extra=""
if [[ "${1:-}" == "--with-test-tools" ]]; then
    extra="[test]"
fi
args=(-e "$here$extra")
for plugin in "$here"/plugins/*/; do
    [[ -f "$plugin/pyproject.toml" ]] && args+=(-e "$plugin")
done
echo "==> installing gns3core and the plugins into $venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "${args[@]}"
if [[ -n "$extra" ]]; then
    # tests/deploy validates deploy/kubernetes offline, against the schemas this pinned release bundles.
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "kubernetes-validate==1.37.0" "PyYAML>=6"
fi
