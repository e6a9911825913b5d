#!/usr/bin/env bash
# Bootstrap the recipe's environment; sourced by run.sh and tests/run.sh.
#
# 1. Debian packages: libsndfile1 for every corpus; the TTS engines, sox and the KJV text only for
#    the synthetic corpus (asr_setup_env ROOT [CORPUS], CORPUS default $ASR_CORPUS, else synth), so
#    your own corpus needs no root. Installed with apt-get when running as root; otherwise the exact
#    apt-get command is printed and we stop.
# 2. A virtualenv in .venv (created when missing), with --system-site-packages when the system python
#    already imports torch: a GPU machine's own CUDA build is reused, never shadowed by a download.
# 3. torch==2.13.0 (pinned) only when no torch is importable in .venv.
# 4. `pip install -e .[synth,dev]` (the package, the TTS engines of the synthetic corpus, pytest),
#    redone only when setup.cfg, setup.py or pyproject.toml change. `pip install .` alone gives the lean
#    trainer.
# A second call only checks: each step is skipped when already satisfied.
# ASR_SETUP=none skips all of it: the caller's python3 already has what is needed (e.g. a GPU
# machine with its own CUDA torch and no network).

APT_PACKAGES=(         # every corpus
  libsndfile1          # audio I/O for soundfile / lhotse
)
SYNTH_APT_PACKAGES=(   # the synthetic corpus only (--corpus synth)
  espeak-ng            # TTS engine (train voices)
  flite                # TTS engine (awb, kal16: train; slt: dev; rms: test)
  festival             # TTS engine
  festvox-kallpc16k    # festival "kal" diphone voice
  festvox-kdlpc16k     # festival "ked" diphone voice (train)
  sox                  # coloured noise for the degradations, piper's pitch shifts
  bible-kjv            # the King James Bible text of the default corpus
)

_asr_log() { echo "[setup_env] $*" >&2; }

# pip, quiet, without the machine-local index warnings some hosts print for every package.
_asr_pip() {
  pip -q "$@" 2>&1 | grep -v "^WARNING: Location 'file:" >&2
  return "${PIPESTATUS[0]}"
}

# asr_missing_apt_packages CORPUS: the Debian packages CORPUS needs that are not installed
asr_missing_apt_packages() {
  local pkg missing=() wanted=("${APT_PACKAGES[@]}")
  [ "$1" = synth ] && wanted+=("${SYNTH_APT_PACKAGES[@]}")
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  echo "${missing[@]}"
}

asr_ensure_apt_packages() {  # asr_ensure_apt_packages CORPUS
  local missing
  missing=$(asr_missing_apt_packages "$1")
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    _asr_log "missing Debian packages: $missing"
    _asr_log "install them with:  sudo apt-get update && sudo apt-get install -y $missing"
    return 1
  fi
  _asr_log "installing Debian packages: $missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null \
    || { _asr_log "apt-get install failed for: $missing"; return 1; }
}

# asr_venv_options PYTHON: --system-site-packages when PYTHON imports torch (the venv reuses it), else nothing.
asr_venv_options() {
  if "$1" -c "import torch" >/dev/null 2>&1; then echo --system-site-packages; fi
}

asr_ensure_venv() {
  local root=$1 python=${PYTHON:-python3} opts
  if [ ! -x "$root/.venv/bin/python" ]; then
    opts=$(asr_venv_options "$python")
    _asr_log "creating $root/.venv with $($python --version 2>&1)${opts:+ and its torch (--system-site-packages)}"
    # shellcheck disable=SC2086
    "$python" -m venv $opts "$root/.venv" || return 1
  fi
  # shellcheck disable=SC1091
  source "$root/.venv/bin/activate"
  if ! python -c "import torch" 2>/dev/null; then
    _asr_log "no torch importable: installing torch==2.13.0"
    _asr_pip install torch==2.13.0 || return 1
  fi
  local stamp="$root/.venv/.asr_trainer-installed" want
  want=$(cat "$root/setup.cfg" "$root/setup.py" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    _asr_log "pip install -e .[synth,dev]"
    _asr_pip install -e "$root[synth,dev]" || return 1
    echo "$want" > "$stamp"
  fi
}

# asr_setup_env ROOT [CORPUS]: CORPUS (default $ASR_CORPUS, else synth) picks the Debian packages
asr_setup_env() {
  local root=$1 corpus=${2:-${ASR_CORPUS:-synth}}
  if [ "${ASR_SETUP:-}" = none ]; then  # an environment brought by the user (a GPU node's own torch)
    _asr_log "ASR_SETUP=none: using $(command -v python3) as it is, no installs"
    export PYTHONUNBUFFERED=1
    return 0
  fi
  asr_ensure_apt_packages "$corpus" || return 1
  asr_ensure_venv "$root" || return 1
  export PYTHONUNBUFFERED=1
}
