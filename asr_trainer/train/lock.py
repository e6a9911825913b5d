"""One run per experiment directory: an advisory lock with its owner written down.

The lead process of a run holds ``<exp_dir>/.lock`` (``fcntl.flock``, released by
the kernel however the process ends) for the whole run; the file names the owner
(pid, host, command, start time). A second run into the same directory is refused
with the owner named. A lock file left by a run that was killed is not held by
anyone: it is detected as stale, logged, and taken over. On a clean exit the file
is removed, so a refused or finished run leaves the directory as it found it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from asr_trainer.errors import UserError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class ExpDirLock:
    """``with ExpDirLock(exp_dir):`` holds ``exp_dir``'s lock or raises :class:`UserError` naming its owner."""

    def __init__(self, exp_dir: Path) -> None:
        self.path = Path(exp_dir) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> "ExpDirLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock (the directory must exist); a held lock is a :class:`UserError`."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                raise UserError(f"{self.path.parent} is in use by another run ({owner}); wait for it to end, "
                                "or train into another --exp-dir") from None
            if _same_file(fd, self.path):  # not unlinked by a releasing owner between open and flock
                break
            os.close(fd)
        stale = _read_owner(fd)
        if stale:
            log.warning("taking over the stale lock of a run that did not end cleanly (%s)", stale)
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and release the lock (a no-op when not held)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def _read_owner(fd: int) -> str:
    """The owner a lock file names, as one phrase ('' for an empty file)."""
    raw = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    if not raw:
        return ""
    try:
        o = json.loads(raw)
        return f"pid {o['pid']} on {o['host']}, started {o['started']}: {o['command']}"
    except (ValueError, KeyError, TypeError):
        return raw[:200]


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    return os.fstat(fd).st_ino == st.st_ino
