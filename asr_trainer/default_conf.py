"""Where the default configuration files are found: the working directory's ``conf/``, else the package's.

The repository's ``conf/`` is the one source of the defaults. The recipes run in the repository
and read (and let you edit) ``conf/...`` there. A wheel built by ``pip install .`` carries the same
files as package data, ``asr_trainer/conf/`` (``setup.py`` maps the package ``asr_trainer.conf`` to
``conf/``), so the CLI's defaults (``--config conf/train.yaml``, ``conf/sync/<name>.yaml``,
``model_config: conf/model/tdnn_lstm.yaml``, ...) work from any directory::

    find_config("conf/train.yaml")  # ./conf/train.yaml if there is one, else the package's copy
"""

from __future__ import annotations

from pathlib import Path

CONF = "conf"


def shipped_conf_dir() -> Path:
    """The shipped defaults: ``asr_trainer/conf`` of an installed package, else (a source checkout or an
    editable install, where the package has no copy) the repository's ``conf/`` beside the package."""
    package = Path(__file__).resolve().parent
    installed = package / CONF
    return installed if installed.is_dir() else package.parent / CONF


def find_config(path: str | Path) -> Path:
    """``path`` when it exists; else, for a relative ``conf/...`` path, the shipped file of that name when
    there is one; else ``path`` unchanged (the caller reports it missing)."""
    p = Path(path)
    if p.exists() or p.is_absolute() or not p.parts or p.parts[0] != CONF:
        return p
    shipped = shipped_conf_dir().joinpath(*p.parts[1:])
    return shipped if shipped.is_file() else p
