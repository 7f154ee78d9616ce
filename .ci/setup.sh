#!/usr/bin/env bash
# Everything kernel-lifecycle needs on a fresh Debian machine: the compiler that arbitrates
# COBOL, the sandbox, a browser for the UI test, the CPU build of torch, and the project.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cobc >/dev/null || need_apt+=(gnucobol3)
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
command -v chromium >/dev/null || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
fi

PY=${PYTHON:-python3}
# torch first, pinned to the CPU wheel: a bare requirement could pull a multi-GB CUDA build.
$PY -c "import torch" 2>/dev/null || $PY -m pip install -q torch==2.13.0
$PY -m pip install -q -e '.[dev]'
# pyenv only sees new console scripts (kernel-lifecycle) after a rehash
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
