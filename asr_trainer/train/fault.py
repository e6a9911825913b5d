"""Restarts and a test hook that injects a worker failure.

Under torchrun ``--max-restarts R``, a failed worker makes the agent stop and
restart all workers with ``TORCHELASTIC_RESTART_COUNT`` > 0; the trainer then
resumes from its latest complete checkpoint (:func:`is_restart`).

Fault injection (tests and drills only; nothing happens unless the variable is set):

* ``ASR_TRAINER_FAULT_AFTER_STEPS=N``: right after global step ``N`` (and after
  the checkpoint of that step, if one is due) the process fails,
* ``ASR_TRAINER_FAULT_RANK=r``: only the process hosting global rank ``r``
  (default: any process),
* ``ASR_TRAINER_FAULT_MODE=kill`` (default: ``os.kill(getpid(), SIGKILL)``, a
  hard crash), ``raise`` (:class:`InjectedFault`, for in-process tests) or
  ``sigint`` / ``sigterm`` (the process sends itself that signal, as Ctrl-C or a
  scheduler's preemption does, and goes on).

It fires only on the first attempt (``TORCHELASTIC_RESTART_COUNT`` unset or 0),
so the restarted job can finish.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Sequence

log = logging.getLogger(__name__)

AFTER_STEPS_ENV = "ASR_TRAINER_FAULT_AFTER_STEPS"
RANK_ENV = "ASR_TRAINER_FAULT_RANK"
MODE_ENV = "ASR_TRAINER_FAULT_MODE"
RESTART_ENV = "TORCHELASTIC_RESTART_COUNT"
SIGNAL_MODES = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM}  # the modes that send the process a signal


class InjectedFault(RuntimeError):
    """The failure :func:`maybe_fail` raises in ``raise`` mode."""


def restart_count() -> int:
    """How many times torchrun has restarted this job (0 outside torchrun)."""
    try:
        return int(os.environ.get(RESTART_ENV, "0") or 0)
    except ValueError:
        return 0


def is_restart() -> bool:
    """True when torchrun restarted the workers after a failure (resume is then implied)."""
    return restart_count() > 0


def maybe_fail(step: int, hosted: Sequence[int]) -> None:
    """Fail now if the fault hook is armed for global step ``step`` and one of the ``hosted`` ranks."""
    after = os.environ.get(AFTER_STEPS_ENV)
    if not after or int(after) != step or restart_count() > 0:
        return
    rank = os.environ.get(RANK_ENV)
    if rank not in (None, "") and int(rank) not in hosted:
        return
    log.warning("fault injection: failing after step %d (%s=%s)", step, AFTER_STEPS_ENV, after)
    mode = os.environ.get(MODE_ENV, "kill")
    if mode == "raise":
        raise InjectedFault(f"injected fault after step {step}")
    if mode in SIGNAL_MODES:
        os.kill(os.getpid(), SIGNAL_MODES[mode])
        return
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)
