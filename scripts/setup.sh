#!/usr/bin/env bash
# Installs whatever is missing (Debian 12 packages; the npm test clients with --with-node) and
# builds offload into build/. Safe to run again: installed packages, node_modules and the build
# are reused.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

with_node=0
build_target=all
cmake_args=()
for arg in "$@"; do
  case "$arg" in
    --with-node) with_node=1 ;;
    --require-e2e) cmake_args+=(-DOFFLOAD_REQUIRE_E2E=ON) ;;
    --binary-only) build_target=offload ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

packages=(ca-certificates g++ cmake ninja-build pkg-config libcaf-dev libboost1.81-dev
          nlohmann-json3-dev libspdlog-dev libyaml-cpp-dev libsqlite3-dev libcli11-dev
          libsystemd-dev libre2-dev libssl-dev)
if [ "$with_node" = 1 ]; then
  # The test run also checks the unit file with systemd-analyze (package systemd).
  packages+=(nodejs npm systemd)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A Node.js from elsewhere (e.g. /usr/local/bin) serves as well as Debian's.
if [ "$with_node" = 1 ] && command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do
    [ "$p" = nodejs ] || [ "$p" = npm ] || filtered+=("$p")
  done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: missing Debian packages: ${missing[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "==> installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Installing ca-certificates regenerates the CA bundle from Debian's list alone. A machine
  # whose bundle was provisioned by other means (a company or proxy CA, with NODE_EXTRA_CA_CERTS
  # pointing at it) would lose those CAs and npm could no longer reach its registry, so the
  # bundle as it was is kept as a local CA source.
  bundle=/etc/ssl/certs/ca-certificates.crt
  saved_bundle=""
  if [ -s "$bundle" ] && ! dpkg-query -W -f='${Status}' ca-certificates 2>/dev/null | grep -q "install ok installed"; then
    saved_bundle=$(mktemp)
    cp "$bundle" "$saved_bundle"
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$saved_bundle" ]; then
    if ! cmp -s "$saved_bundle" "$bundle"; then
      mkdir -p /usr/local/share/ca-certificates
      cp "$saved_bundle" /usr/local/share/ca-certificates/offload-preserved-bundle.crt
      update-ca-certificates >/dev/null 2>&1
    fi
    rm -f "$saved_bundle"
  fi
fi

if [ "$with_node" = 1 ]; then
  # node_modules is reinstalled only when the lockfile changed.
  if ! cmp -s package-lock.json node_modules/.offload-lock 2>/dev/null; then
    echo "==> installing npm test clients (package-lock.json)"
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.offload-lock
  fi
fi

echo "==> building offload (build/)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${cmake_args[@]+"${cmake_args[@]}"}" >/dev/null
cmake --build build -j "$(nproc)" --target "$build_target"
