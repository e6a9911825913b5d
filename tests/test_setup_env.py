"""The bootstrap (local/setup_env.sh) reuses a torch the system python already imports: .venv gets
``--system-site-packages`` then, a plain venv and the pinned torch otherwise. Stub pythons stand in for both."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A stub python: `-c "import torch"` succeeds when TORCH=yes; `-m venv [opts] DIR` records its options and makes
# DIR/bin/{python,activate}; the venv's python imports torch only when it has the system site packages.
STUB = """#!/usr/bin/env bash
case "$1" in
  --version) echo "Python 3.stub" ;;
  -c) [ "$TORCH" = yes ] ;;
  -m) [ "$2" = venv ] || exit 0
      shift 2; dir=${@: -1}; echo "$*" > "$LOG"; mkdir -p "$dir/bin"
      system=no; [ "$1" = --system-site-packages ] && system=yes
      printf '#!/usr/bin/env bash\\n[ "$1" != -c ] || [ %s = yes ]\\n' "$system" > "$dir/bin/python"
      printf 'pip() { echo "pip $*" >> "%s"; }\\nPATH="%s:$PATH"\\n' "$LOG" "$dir/bin" > "$dir/bin/activate"
      chmod +x "$dir/bin/python" ;;
esac
"""


def _bootstrap(tmp_path: Path, system_torch: bool) -> str:
    """asr_ensure_venv in an empty root with the stub as the system python; returns what was done."""
    stub = tmp_path / "python3"
    stub.write_text(STUB)
    stub.chmod(0o755)
    root = tmp_path / "root"
    root.mkdir()
    for name in ("setup.cfg", "setup.py", "pyproject.toml"):
        (root / name).write_text("")
    log = tmp_path / "log"
    script = f'source "{ROOT}/local/setup_env.sh"; asr_ensure_venv "{root}"'
    env = {"PATH": "/usr/bin:/bin", "PYTHON": str(stub), "TORCH": "yes" if system_torch else "no", "LOG": str(log)}
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return log.read_text()


@pytest.mark.parametrize("system_torch", [True, False])
def test_venv_reuses_the_system_torch_or_installs_the_pinned_one(tmp_path, system_torch):
    done = _bootstrap(tmp_path, system_torch).splitlines()
    venv_args, installs = done[0], done[1:]
    assert venv_args.startswith("--system-site-packages ") == system_torch
    torch_installs = [line for line in installs if "torch" in line and "-e" not in line]
    assert torch_installs == ([] if system_torch else ["pip -q install torch==2.13.0"])
    assert any(line.endswith("[synth,dev]") for line in installs)  # the package itself, either way
