"""Lossless wire formats of a GTC message (which elements were sent, with which sign).

A message says: elements ``indices`` (sorted, unique, int64) of a flat vector of
``numel`` elements were sent as ``-tau`` where ``negative`` else ``+tau``.
Every payload is a uint8 tensor: 1 byte kind, 4 bytes tau (float32, little
endian), then the body:

``STROM``   int32 per sent element, ``index << 1 | negative`` (Strom 2015): 32 bits each.
``VARINT``  per sent element ``gap << 1 | negative`` as LEB128 varint, ``gap`` the
            number of unsent elements since the previous sent one: 8 bits per
            element while gaps stay below 64, 16 below 8192.
``BITMAP``  ``numel`` presence bits then one sign bit per sent element:
            ``numel/k + 1`` bits per sent element, the cheapest above ~1/7 density.

``encoding="compact"`` picks, per message, the smaller of VARINT and BITMAP
(exact sizes, computed before encoding). The bodies are written straight into
the payload and read back by small compiled loops (numba, cached on disk: see
:func:`asr_trainer.sync.jit.kernel`), one pass over the k sent elements (or the
``numel/8`` bitmap bytes) each: no per-byte-position passes, no ``numel``-sized
temporaries. The varint gap codes are computed on the fly from the indices, never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from numba.cpython.unsafe.numbers import leading_zeros  # LLVM's ctlz: one instruction

from asr_trainer.sync.jit import kernel

STROM, VARINT, BITMAP = 0, 1, 2
KIND_NAMES = {STROM: "strom", VARINT: "varint", BITMAP: "bitmap"}
HEADER_BYTES = 5


@dataclass(frozen=True)
class SparseMessage:
    """Sent elements of one worker: ``indices`` int64 (k,) sorted; ``negative`` bool (k,)."""

    indices: np.ndarray
    negative: np.ndarray
    tau: float
    numel: int

    @property
    def count(self) -> int:
        """Sent elements k."""
        return int(self.indices.size)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``indices`` and ``negative`` as contiguous int64 and bool, what the compiled loops take (no copy
        when they already are)."""
        return np.ascontiguousarray(self.indices, dtype=np.int64), np.ascontiguousarray(self.negative, dtype=bool)

    def values(self) -> np.ndarray:
        """The sent values, float32 (k,): ``+tau`` or ``-tau``."""
        tau = np.float32(self.tau)
        return np.array([tau, -tau], dtype=np.float32)[np.asarray(self.negative, dtype=bool).view(np.uint8)]


def encode(msg: SparseMessage, encoding: Literal["strom", "compact"] = "compact") -> torch.Tensor:
    """The payload of ``msg``: uint8 tensor (HEADER_BYTES + body,)."""
    indices, negative = msg.arrays()
    if encoding == "strom":
        if msg.numel >= 2**31:
            raise ValueError("Strom's int32 encoding holds at most 2**31 elements")
        kind, size = STROM, 4 * indices.size
    else:
        kind, size = _choose(msg)
    payload = np.empty(HEADER_BYTES + size, dtype=np.uint8)  # body written in place: no concatenation
    payload[0] = kind
    payload[1:HEADER_BYTES] = np.array([msg.tau], dtype="<f4").view(np.uint8)
    body = payload[HEADER_BYTES:]
    if kind == STROM:
        _write_strom(indices, negative, body)
    elif kind == VARINT:
        _write_varint(indices, negative, body)
    else:
        _write_bitmap(indices, negative, body)
    return torch.from_numpy(payload)


def decode(payload: torch.Tensor, numel: int, workspace: dict | None = None) -> SparseMessage:
    """Inverse of :func:`encode`; ``numel`` is the length of the flat vector.

    ``workspace``: a dict the caller keeps between calls. With it, the message's arrays are views of
    buffers held there, reused by the next decode with the same workspace: read the message before
    decoding the next (:func:`asr_trainer.sync.gtc.aggregate_payloads` does). Large fresh arrays
    cost a page fault per page on every call (glibc maps allocations above 32 MB anew each time);
    reused ones do not.
    """
    raw = payload.numpy() if payload.dtype == torch.uint8 else payload.to(torch.uint8).numpy()
    kind = int(raw[0])
    tau = float(raw[1:HEADER_BYTES].copy().view("<f4")[0])
    body = np.ascontiguousarray(raw[HEADER_BYTES:])
    if kind == STROM:
        indices, negative = _outputs(body.size // 4, workspace)
        _read_strom(body, indices, negative)
    elif kind == VARINT:
        indices, negative = _outputs(_varint_count(body), workspace)
        _read_varint(body, indices, negative)
    elif kind == BITMAP:
        if body.size < (numel + 7) // 8:
            raise ValueError("GTC bitmap body shorter than its presence bits")
        indices, negative = _outputs(8 * (body.size - (numel + 7) // 8), workspace)  # k to within 8
        k = _read_bitmap(body, numel, indices, negative)
        indices, negative = indices[:k], negative[:k]
    else:
        raise ValueError(f"unknown GTC payload kind {kind}")
    if not _all_below(indices, numel):  # the compiled scatters do not bounds-check: a corrupt message stops here
        raise ValueError(f"corrupt GTC payload ({KIND_NAMES[kind]}): element index outside a vector of {numel}")
    return SparseMessage(indices, negative, tau, numel)


@kernel
def _all_below(indices: np.ndarray, numel: int) -> bool:
    """Whether every index (int64 (k,)) is in ``[0, numel)``: one pass, no temporaries."""
    for j in range(indices.size):
        if indices[j] < 0 or indices[j] >= numel:
            return False
    return True


def _outputs(k: int, workspace: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """Arrays for k decoded elements (int64 (k,), bool (k,)): fresh, or views of ``workspace``'s buffers."""
    if workspace is None:
        return np.empty(k, dtype=np.int64), np.empty(k, dtype=bool)
    indices = workspace.get("decoded_indices")
    if indices is None or indices.size < k:
        workspace["decoded_indices"], workspace["decoded_negative"] = np.empty(k, np.int64), np.empty(k, bool)
    return workspace["decoded_indices"][:k], workspace["decoded_negative"][:k]


def choose_kind(msg: SparseMessage) -> int:
    """VARINT or BITMAP, whichever body is smaller (ties: VARINT)."""
    return _choose(msg)[0]


def _choose(msg: SparseMessage) -> tuple[int, int]:
    """(kind, body bytes)."""
    bitmap = _bitmap_bytes(msg)
    if msg.indices.size >= bitmap:  # a varint is at least one byte per element
        return BITMAP, bitmap
    varint = _varint_size(msg.arrays()[0])
    return (VARINT, varint) if varint <= bitmap else (BITMAP, bitmap)


def body_bits(msg: SparseMessage, kind: int) -> int:
    """Size in bits of the body of ``msg`` under ``kind`` (without the header)."""
    if kind == STROM:
        return 32 * msg.indices.size
    if kind == VARINT:
        return 8 * _varint_size(msg.arrays()[0])
    return 8 * _bitmap_bytes(msg)


@kernel
def _write_strom(indices: np.ndarray, negative: np.ndarray, out: np.ndarray) -> None:
    """``index << 1 | negative`` (int64 (k,), bool (k,)) as little-endian 32-bit codes into ``out`` uint8 (4k,)."""
    for j in range(indices.size):
        code = (indices[j] << 1) | negative[j]
        for b in range(4):
            out[4 * j + b] = (code >> (8 * b)) & 0xFF


@kernel
def _read_strom(body: np.ndarray, indices: np.ndarray, negative: np.ndarray) -> None:
    """Inverse of :func:`_write_strom`: uint8 (4k,) into indices int64 (k,) and negative bool (k,)."""
    for j in range(body.size // 4):
        code = np.int64(0)
        for b in range(4):
            code |= np.int64(body[4 * j + b]) << (8 * b)
        indices[j] = code >> 1
        negative[j] = (code & 1) != 0


@kernel
def _varint_size(indices: np.ndarray) -> int:
    """Bytes of the LEB128 gap codes ``gap << 1 | negative`` of ``indices`` (int64 (k,) sorted; ``gap``: the
    unsent elements since the previous sent one), one per started 7 bits. The sign bit never changes a
    code's length (``2**(7b)`` is even), so only the indices are read."""
    total, previous = 0, np.int64(-1)
    for j in range(indices.size):
        code = (indices[j] - previous - 1) << 1
        previous = indices[j]
        total += 1
        for b in range(1, 9):
            total += code >= np.int64(1) << (7 * b)
    return total


def _varint_body(msg: SparseMessage) -> np.ndarray:
    """The VARINT body of ``msg``, uint8 (``_varint_size``,)."""
    indices, negative = msg.arrays()
    out = np.empty(_varint_size(indices), dtype=np.uint8)
    _write_varint(indices, negative, out)
    return out


@kernel
def _write_varint(indices: np.ndarray, negative: np.ndarray, out: np.ndarray) -> None:
    """LEB128 gap codes ``gap << 1 | negative`` of ``indices`` (int64 (k,) sorted) and ``negative`` (bool (k,))
    into ``out`` (uint8, ``_varint_size(indices)``); codes below 2**63.

    Codes below 2**14 (one or two bytes: all but the rarest at densities above ~1e-4) are written
    without a branch on their length: two bytes each, the second overwritten by the next code when
    the code has one byte. Every code but the last has a next one, hence room for two bytes.
    """
    pos, previous = 0, np.int64(-1)
    for j in range(indices.size):
        code = ((indices[j] - previous - 1) << 1) | np.int64(negative[j])
        previous = indices[j]
        if code < 1 << 14 and j < indices.size - 1:
            more = np.int64(code >= 0x80)
            out[pos] = (code & 0x7F) | (more << 7)
            out[pos + 1] = code >> 7
            pos += 1 + more
        else:
            pos = _write_one_varint(code, out, pos)


@kernel
def _write_one_varint(code: int, out: np.ndarray, pos: int) -> int:
    """LEB128 bytes of ``code`` (0 <= code < 2**63) into ``out`` (uint8) from ``pos``; returns the position after."""
    while code >= 0x80:
        out[pos] = (code & 0x7F) | 0x80
        code >>= 7
        pos += 1
    out[pos] = code
    return pos + 1


@kernel
def _varint_count(body: np.ndarray) -> int:
    """Complete LEB128 codes in ``body`` (uint8): its bytes below 0x80 (each ends a code)."""
    k = 0
    for b in body:
        k += b < 0x80
    return k


@kernel
def _read_varint(body: np.ndarray, indices: np.ndarray, negative: np.ndarray) -> None:
    """LEB128 gap codes (uint8 body) into indices int64 (k,) and negative bool (k,), k = ``_varint_count(body)``;
    a truncated last code is dropped.

    Branch-free per byte: every byte writes the slot of the code it belongs to, which keeps the
    value written by its last byte.
    """
    end = body.size
    while end and body[end - 1] >= 0x80:
        end -= 1
    index, code, shift, j = np.int64(-1), np.int64(0), np.int64(0), 0
    for p in range(end):
        b = np.int64(body[p])
        code |= (b & 0x7F) << shift
        candidate = index + (code >> 1) + 1
        indices[j] = candidate
        negative[j] = (code & 1) != 0
        last = b < 0x80
        index = candidate if last else index
        j += last
        keep = np.int64(last) - 1  # 0 after a code's last byte, else all ones
        code &= keep
        shift = (shift + 7) & keep


def _bitmap_bytes(msg: SparseMessage) -> int:
    """Size in bytes of the BITMAP body: ``numel`` presence bits, then k sign bits, each padded to bytes."""
    return (msg.numel + 7) // 8 + (msg.indices.size + 7) // 8


def _bitmap_body(msg: SparseMessage) -> np.ndarray:
    """The BITMAP body of ``msg``, uint8 (``_bitmap_bytes(msg)``,)."""
    out = np.empty(_bitmap_bytes(msg), dtype=np.uint8)
    _write_bitmap(*msg.arrays(), out)
    return out


@kernel
def _write_bitmap(indices: np.ndarray, negative: np.ndarray, out: np.ndarray) -> None:
    """Presence bits of ``indices`` then the ``negative`` bits, MSB first (``np.packbits`` order), into ``out``.

    indices int64 (k,), negative bool (k,); out uint8: ``ceil(numel/8) + ceil(k/8)`` bytes. The
    presence bytes are zeroed and OR-ed; the sign bytes are built 8 signs at a time, without branches.
    """
    k = indices.size
    nbytes = out.size - (k + 7) // 8
    out[:nbytes] = 0
    for j in range(k):
        i = indices[j]
        out[i >> 3] |= np.uint8(0x80 >> (i & 7))
    for j in range(0, k, 8):
        byte = np.uint8(0)
        for t in range(min(8, k - j)):
            byte |= np.uint8(negative[j + t]) << np.uint8(7 - t)
        out[nbytes + (j >> 3)] = byte


_TOP_BIT = np.uint64(1) << np.uint64(63)


@kernel
def _read_bitmap(body: np.ndarray, numel: int, indices: np.ndarray, negative: np.ndarray) -> int:
    """Inverse of :func:`_write_bitmap`: the sent elements of a ``numel`` bitmap into indices int64 and
    negative bool, both ``8 * (body.size - ceil(numel/8))`` long (what the sign bytes allow); returns k.

    Reads the presence bits 64 at a time as a big-endian word (bit 63: the word's first element)
    and visits only its set bits (leading-zero count). A body whose sign bytes do not match its
    presence bits is refused. Padding bits past ``numel`` are ignored.
    """
    nbytes = (numel + 7) // 8
    capacity = indices.size
    last = np.uint64((0xFF << (8 * nbytes - numel)) & 0xFF)  # the real bits of the last byte
    j = 0
    for w in range((nbytes + 7) // 8):
        word = np.uint64(0)
        for b in range(8):
            t = 8 * w + b
            if t < nbytes:
                byte = np.uint64(body[t]) & (last if t == nbytes - 1 else np.uint64(0xFF))
                word |= byte << np.uint64(56 - 8 * b)
        while word:
            lz = leading_zeros(word)
            word ^= _TOP_BIT >> np.uint64(lz)
            if j == capacity:
                raise ValueError("GTC bitmap body shorter than its sign bits")
            indices[j] = 64 * w + lz
            negative[j] = (body[nbytes + (j >> 3)] >> (7 - (j & 7))) & 1
            j += 1
    if capacity - j >= 8:
        raise ValueError("GTC bitmap body longer than the sign bits of its presence bits")
    return j
