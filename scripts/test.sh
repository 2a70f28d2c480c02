#!/usr/bin/env bash
# Install everything the tests need (as root), check the style, run the whole test suite inside .venv.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bash scripts/system-packages.sh --with-test-tools
bash scripts/python-packages.sh --with-test-tools
export PATH="$here/.venv/bin:$PATH"
python -m ruff check .
python -m pytest -q -p no:cacheprovider "$@"
