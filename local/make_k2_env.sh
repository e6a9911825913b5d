#!/usr/bin/env bash
# Build the optional k2 decoding environment: a Python 3.9 virtualenv with
# torch==1.13.1 + k2==1.23.4 (the newest pair PyPI has wheels for), numpy<2 and
# kaldifst.  It lives OUTSIDE the repository:
#
#     ${ASR_K2_ENV:-$HOME/.cache/asr_trainer/k2-py39}
#
# Usage:  local/make_k2_env.sh [--force]
#
# Idempotent: when the environment exists and imports k2 it only says so.
# Python 3.9 is looked for as $PYTHON39, `python3.9` on PATH, then
# ~/.pyenv/versions/3.9*/bin/python3.9.  Exit status 1 (with the reason) when
# no Python 3.9 is found or pip fails.
#
# The PyPI wheels: k2 1.23.4 (cp39, manylinux) is built against torch 1.13.1;
# torch 1.13.1's PyPI wheel pulls the nvidia-*-cu11 CUDA 11.7 runtime
# packages (cuDNN, cuBLAS: ~2.5 GiB installed) and will not import without
# them, and only PyPI is reachable here, so the CPU-only wheel of
# download.pytorch.org cannot be used.  GPU users: see README "k2".
set -euo pipefail

ENV_DIR=${ASR_K2_ENV:-$HOME/.cache/asr_trainer/k2-py39}
TORCH_VERSION=1.13.1
K2_VERSION=1.23.4
PACKAGES=("torch==$TORCH_VERSION" "k2==$K2_VERSION" "numpy<2" "kaldifst")

log() { echo "[make_k2_env] $*" >&2; }

# pip, quiet, without the machine-local index warnings some hosts print for every package.
pip_quiet() {
  "$ENV_DIR/bin/python" -m pip -q "$@" 2>&1 | grep -v "^WARNING: Location 'file:" >&2
  return "${PIPESTATUS[0]}"
}

env_works() {
  [ -x "$ENV_DIR/bin/python" ] && "$ENV_DIR/bin/python" - <<EOF >/dev/null 2>&1
import k2, torch, numpy, kaldifst
assert torch.__version__.startswith("$TORCH_VERSION"), torch.__version__
EOF
}

find_python39() {
  local candidates=() py
  [ -n "${PYTHON39:-}" ] && candidates+=("$PYTHON39")
  command -v python3.9 >/dev/null 2>&1 && candidates+=("$(command -v python3.9)")
  for py in "$HOME"/.pyenv/versions/3.9*/bin/python3.9; do
    [ -x "$py" ] && candidates+=("$py")
  done
  for py in "${candidates[@]}"; do
    # A pyenv shim exists even when 3.9 is not selected: check it really runs 3.9.
    if "$py" -c 'import sys, venv; assert sys.version_info[:2] == (3, 9)' >/dev/null 2>&1; then
      echo "$py"
      return 0
    fi
  done
  return 1
}

main() {
  if [ "${1:-}" = "--force" ]; then
    log "removing $ENV_DIR"
    rm -rf "$ENV_DIR"
  fi
  if env_works; then
    log "k2 environment already built: $ENV_DIR"
    echo "$ENV_DIR/bin/python"
    return 0
  fi
  local py
  if ! py=$(find_python39); then
    log "no Python 3.9 found (tried \$PYTHON39, python3.9 on PATH, ~/.pyenv/versions/3.9*)."
    log "k2's PyPI wheels exist for Python <= 3.9 only: install one, e.g. 'pyenv install 3.9.18',"
    log "or install k2 for your own torch/CUDA (README 'k2')."
    return 1
  fi
  local start=$SECONDS
  log "creating $ENV_DIR with $py ($("$py" --version 2>&1))"
  mkdir -p "$(dirname "$ENV_DIR")"
  rm -rf "$ENV_DIR"
  "$py" -m venv "$ENV_DIR" || { log "venv creation failed"; return 1; }
  pip_quiet install --upgrade pip || { log "pip upgrade failed"; return 1; }
  log "installing ${PACKAGES[*]} (a large download: torch pulls the CUDA 11 runtime)"
  if ! pip_quiet install "${PACKAGES[@]}"; then
    log "pip install failed; the half-built environment is left in $ENV_DIR (rerun with --force)"
    return 1
  fi
  if ! env_works; then
    log "installed, but 'import k2' fails in $ENV_DIR:"
    "$ENV_DIR/bin/python" -c 'import k2' || true
    return 1
  fi
  log "done in $((SECONDS - start)) s; size $(du -sh "$ENV_DIR" | cut -f1)"
  echo "$ENV_DIR/bin/python"
}

main "$@"
