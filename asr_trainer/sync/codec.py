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
(exact sizes, computed before encoding). All of it is vectorised numpy: the
only Python loops run over the (at most 5) byte positions of a varint. Gap
codes are uint32 (numel <= 2**31), the body is written straight into the
payload, and each byte position costs one scatter (encode) or gather (decode).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

STROM, VARINT, BITMAP = 0, 1, 2
KIND_NAMES = {STROM: "strom", VARINT: "varint", BITMAP: "bitmap"}
HEADER_BYTES = 5
_MAX_VARINT_BYTES = 5  # values < 2**35; ours are < 2**32


@dataclass(frozen=True)
class SparseMessage:
    """Sent elements of one worker: ``indices`` int64 (k,) sorted; ``negative`` bool (k,)."""

    indices: np.ndarray
    negative: np.ndarray
    tau: float
    numel: int

    def values(self) -> np.ndarray:
        """The sent values, float32 (k,): ``+tau`` or ``-tau``."""
        tau = np.float32(self.tau)
        return np.array([tau, -tau], dtype=np.float32)[np.asarray(self.negative, dtype=bool).view(np.uint8)]


def encode(msg: SparseMessage, encoding: Literal["strom", "compact"] = "compact") -> torch.Tensor:
    """The payload of ``msg``: uint8 tensor (HEADER_BYTES + body,)."""
    if encoding == "strom":
        kind, size = STROM, 4 * msg.indices.size
    else:
        kind, codes, lengths = _choose(msg)
        size = int(lengths.sum(dtype=np.int64)) if kind == VARINT else _bitmap_bytes(msg)
    payload = np.empty(HEADER_BYTES + size, dtype=np.uint8)  # body written in place: no concatenation
    payload[0] = kind
    payload[1:HEADER_BYTES] = np.array([msg.tau], dtype="<f4").view(np.uint8)
    body = payload[HEADER_BYTES:]
    if kind == STROM:
        _write_strom(msg, body)
    elif kind == VARINT:
        _write_varint(codes, lengths, body)
    else:
        _write_bitmap(msg, body)
    return torch.from_numpy(payload)


def decode(payload: torch.Tensor, numel: int) -> SparseMessage:
    """Inverse of :func:`encode`; ``numel`` is the length of the flat vector."""
    raw = payload.numpy() if payload.dtype == torch.uint8 else payload.to(torch.uint8).numpy()
    kind = int(raw[0])
    tau = float(raw[1:HEADER_BYTES].copy().view("<f4")[0])
    body = raw[HEADER_BYTES:]
    if kind == STROM:
        codes = np.frombuffer(body.tobytes(), dtype="<u4")  # aligned copy; uint32: indices up to 2**31 - 1
        return SparseMessage((codes >> 1).astype(np.int64), (codes & 1).astype(bool), tau, numel)
    if kind == VARINT:
        codes = _varint_decode(body)
        indices = np.cumsum((codes >> 1).astype(np.int64) + 1) - 1
        return SparseMessage(indices, (codes & 1).astype(bool), tau, numel)
    if kind == BITMAP:
        nbits = (numel + 7) // 8
        mask = np.unpackbits(body[:nbits], count=numel).view(bool)
        indices = np.flatnonzero(mask)
        negative = np.unpackbits(body[nbits:], count=indices.size).view(bool)
        return SparseMessage(indices, negative, tau, numel)
    raise ValueError(f"unknown GTC payload kind {kind}")


def choose_kind(msg: SparseMessage) -> int:
    """VARINT or BITMAP, whichever body is smaller (ties: VARINT)."""
    return _choose(msg)[0]


def _choose(msg: SparseMessage) -> tuple[int, np.ndarray | None, np.ndarray | None]:
    """(kind, gap codes, their varint lengths); codes and lengths only when computed (always for VARINT)."""
    k = msg.indices.size
    bitmap = _bitmap_bytes(msg)
    if k >= bitmap:  # a varint is at least one byte per element
        return BITMAP, None, None
    codes = _gap_codes(msg)
    lengths = _varint_lengths(codes)
    return (VARINT if int(lengths.sum(dtype=np.int64)) <= bitmap else BITMAP), codes, lengths


def body_bits(msg: SparseMessage, kind: int) -> int:
    """Size in bits of the body of ``msg`` under ``kind`` (without the header)."""
    if kind == STROM:
        return 32 * msg.indices.size
    if kind == VARINT:
        return 8 * int(_varint_lengths(_gap_codes(msg)).sum(dtype=np.int64))
    return 8 * _bitmap_bytes(msg)


def _write_strom(msg: SparseMessage, out: np.ndarray) -> None:
    """``index << 1 | negative`` as little-endian int32 into ``out`` (uint8 (4k,))."""
    if msg.numel >= 2**31:
        raise ValueError("Strom's int32 encoding holds at most 2**31 elements")
    codes = msg.indices.astype("<u4")
    codes <<= 1
    codes |= msg.negative
    out[:] = codes.view(np.uint8)


def _gap_codes(msg: SparseMessage) -> np.ndarray:
    """``gap << 1 | negative`` per sent element, (k,): uint32 while ``numel <= 2**31``, else uint64."""
    dtype = np.uint32 if msg.numel <= 2**31 else np.uint64
    idx = msg.indices
    codes = np.empty(idx.size, dtype=dtype)
    if idx.size:
        codes[0] = idx[0]
        np.subtract(idx[1:], idx[:-1], out=codes[1:], casting="unsafe")  # gap + 1 (>= 1)
        codes[1:] -= 1
        codes <<= 1
        codes |= msg.negative
    return codes


def _varint_lengths(codes: np.ndarray) -> np.ndarray:
    """LEB128 length in bytes of each code, uint8 (k,)."""
    lengths = np.ones(codes.size, dtype=np.uint8)
    top = int(codes.max()) if codes.size else 0
    for j in range(1, _MAX_VARINT_BYTES):
        if top < 1 << (7 * j):
            break
        lengths += codes >= codes.dtype.type(1 << (7 * j))
    return lengths


def _varint_body(codes: np.ndarray) -> np.ndarray:
    lengths = _varint_lengths(codes)
    out = np.empty(int(lengths.sum(dtype=np.int64)), dtype=np.uint8)
    _write_varint(codes, lengths, out)
    return out


def _write_varint(codes: np.ndarray, lengths: np.ndarray, out: np.ndarray) -> None:
    """LEB128 bytes of ``codes`` into ``out`` (uint8, ``lengths.sum()`` bytes).

    Byte ``j`` of every code goes to ``start + j`` in one vectorised scatter,
    ``j`` from the longest code's last byte down to 0, for all codes at once (no
    gathers of the codes still that long). A code shorter than ``j + 1`` writes a
    stray byte into a later code's byte ``j' < j`` (or clamped onto the last
    byte), which that code's own write, coming later, overwrites.
    """
    if not codes.size:
        return
    starts = np.cumsum(lengths, dtype=np.int64)
    starts -= lengths
    pos = np.empty_like(starts)
    for j in reversed(range(int(lengths.max()))):
        byte = (codes >> codes.dtype.type(7 * j)).astype(np.uint8)
        byte &= 0x7F
        byte |= (lengths > j + 1).view(np.uint8) << 7
        if j:
            np.add(starts, j, out=pos)
            np.minimum(pos, out.size - 1, out=pos)
            out[pos] = byte
        else:
            out[starts] = byte


def _varint_decode(body: np.ndarray) -> np.ndarray:
    """LEB128 bytes -> codes, uint64 (k,): one vectorised gather per byte position, over all codes."""
    ends = np.flatnonzero(body < 0x80)  # last byte of each code
    if not ends.size:
        return np.zeros(0, dtype=np.uint64)
    starts = np.empty_like(ends)
    starts[0] = 0
    np.add(ends[:-1], 1, out=starts[1:])
    low = body & 0x7F
    codes = low[starts].astype(np.uint64)
    pos = np.empty_like(starts)
    for j in range(1, min(int((ends - starts).max()) + 1, _MAX_VARINT_BYTES)):
        np.add(starts, j, out=pos)
        valid = pos <= ends  # codes at least j + 1 bytes long
        np.minimum(pos, ends, out=pos)
        codes |= (low[pos] * valid).astype(np.uint64) << np.uint64(7 * j)
    return codes


def _bitmap_bytes(msg: SparseMessage) -> int:
    """Size in bytes of the BITMAP body: ``numel`` presence bits, then k sign bits, each padded to bytes."""
    return (msg.numel + 7) // 8 + (msg.indices.size + 7) // 8


def _bitmap_body(msg: SparseMessage) -> np.ndarray:
    out = np.empty(_bitmap_bytes(msg), dtype=np.uint8)
    _write_bitmap(msg, out)
    return out


def _write_bitmap(msg: SparseMessage, out: np.ndarray) -> None:
    mask = np.zeros(msg.numel, dtype=bool)
    mask[msg.indices] = True
    nbytes = (msg.numel + 7) // 8
    out[:nbytes] = np.packbits(mask)
    out[nbytes:] = np.packbits(msg.negative)
