"""A free TCP port, for launchers that must be told one (torchrun's ``--rdzv-endpoint`` in tests)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (racy: another socket may take it before the
    launcher binds it; :func:`asr_trainer.sync.run_processes` needs none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
