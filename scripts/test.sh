#!/usr/bin/env bash
# Install everything the tests need (as root), check the style, run the whole test suite.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bash scripts/system-packages.sh --with-test-tools
bash scripts/python-packages.sh --with-test-tools
python3 -m ruff check .
python3 -m pytest -q -p no:cacheprovider "$@"
