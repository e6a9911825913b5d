"""Compiled loops of the GTC hot path: numba ``njit``, cached on disk.

The first process compiles each loop once per argument types and numba keeps
the machine code in ``__pycache__`` next to the module (a read-only install
falls back to the user's cache directory, ``~/.cache/numba``); later processes
load it. Where no cache directory is writable at all, each process compiles.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import numba

F = TypeVar("F", bound=Callable)


def kernel(fn: F) -> F:
    """``fn`` compiled in nopython mode, releasing the GIL, cached on disk where possible (no fastmath)."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # numba found no writable cache directory
        return numba.njit(nogil=True)(fn)
