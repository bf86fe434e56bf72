#!/usr/bin/env bash
# Installs what is missing, builds, and runs the demo: the offload daemon over stdio, driven by
# the official MCP client, with a batch fanned out in parallel. Uses Ollama on 127.0.0.1:11434
# when one answers there, otherwise the bundled fake LLM (and says so).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --with-node --binary-only
exec node scripts/demo.mjs "$@"
