#!/usr/bin/env bash
# Installs, only when missing, every Debian package that Warmline's build,
# tests and tools need. Safe to run again: it does nothing when all is there.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libuv1-dev libprotobuf-c-dev protobuf-c-compiler librocksdb-dev zlib1g-dev libisal-dev libssl-dev
  libinih-dev libsodium-dev libjansson-dev uthash-dev
  libcmocka-dev python3 python3-protobuf python3-prometheus-client protobuf-compiler
  libcurl4-openssl-dev libmicrohttpd-dev
  e2fsprogs
  clang libclang-rt-14-dev
  chromium
)
# The page's browser test runs Node (tests/ui). These machines may carry Node 20 and its npm
# from elsewhere, and Debian's npm conflicts with that: install them only when the commands
# are missing, not when the packages are.
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "bootstrap: installing ${missing[*]}" >&2
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "bootstrap: missing packages (${missing[*]}); run as root or install them" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
