#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, actor and end-to-end) with ctest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --with-node --require-e2e
echo "==> running the tests"
ctest --test-dir build --output-on-failure -j "$(nproc)"
