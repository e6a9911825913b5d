"""Logging set-up shared by every command: terminal plus an optional log file."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


def setup_logging(log_file: Path | str | None = None, level: int = logging.INFO) -> None:
    """Send log records to stderr and, when given, append them to ``log_file``."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        path = Path(log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)
