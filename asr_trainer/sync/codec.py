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
only Python loops run over the (at most 5) byte positions of a varint.
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
        return np.where(self.negative, -tau, tau).astype(np.float32, copy=False)


def encode(msg: SparseMessage, encoding: Literal["strom", "compact"] = "compact") -> torch.Tensor:
    """The payload of ``msg``: uint8 tensor (HEADER_BYTES + body,)."""
    if encoding == "strom":
        kind, body = STROM, _strom_body(msg)
    else:
        kind = choose_kind(msg)
        body = _varint_body(_gap_codes(msg)) if kind == VARINT else _bitmap_body(msg)
    head = np.empty(HEADER_BYTES, dtype=np.uint8)
    head[0] = kind
    head[1:] = np.array([msg.tau], dtype="<f4").view(np.uint8)
    return torch.from_numpy(np.concatenate([head, body]))


def decode(payload: torch.Tensor, numel: int) -> SparseMessage:
    """Inverse of :func:`encode`; ``numel`` is the length of the flat vector."""
    raw = payload.numpy() if payload.dtype == torch.uint8 else payload.to(torch.uint8).numpy()
    kind = int(raw[0])
    tau = float(raw[1:HEADER_BYTES].copy().view("<f4")[0])
    body = raw[HEADER_BYTES:]
    if kind == STROM:
        codes = body.view("<i4").astype(np.int64)
        return SparseMessage(codes >> 1, (codes & 1).astype(bool), tau, numel)
    if kind == VARINT:
        codes = _varint_decode(body)
        indices = (np.cumsum((codes >> np.uint64(1)) + np.uint64(1)) - np.uint64(1)).astype(np.int64)
        return SparseMessage(indices, (codes & np.uint64(1)).astype(bool), tau, numel)
    if kind == BITMAP:
        nbits = (numel + 7) // 8
        mask = np.unpackbits(body[:nbits], count=numel).view(bool)
        indices = np.flatnonzero(mask)
        negative = np.unpackbits(body[nbits:], count=indices.size).view(bool)
        return SparseMessage(indices, negative, tau, numel)
    raise ValueError(f"unknown GTC payload kind {kind}")


def choose_kind(msg: SparseMessage) -> int:
    """VARINT or BITMAP, whichever body is smaller (ties: VARINT)."""
    k = msg.indices.size
    bitmap = (msg.numel + 7) // 8 + (k + 7) // 8
    if k >= bitmap:  # a varint is at least one byte per element
        return BITMAP
    if _MAX_VARINT_BYTES * k <= bitmap:
        return VARINT
    return VARINT if int(_varint_lengths(_gap_codes(msg)).sum()) <= bitmap else BITMAP


def body_bits(msg: SparseMessage, kind: int) -> int:
    """Size in bits of the body of ``msg`` under ``kind`` (without the header)."""
    if kind == STROM:
        return 32 * msg.indices.size
    if kind == VARINT:
        return 8 * int(_varint_lengths(_gap_codes(msg)).sum())
    return 8 * ((msg.numel + 7) // 8 + (msg.indices.size + 7) // 8)


def _strom_body(msg: SparseMessage) -> np.ndarray:
    if msg.numel >= 2**31:
        raise ValueError("Strom's int32 encoding holds at most 2**31 elements")
    codes = (msg.indices.astype(np.int32) << 1) | msg.negative.astype(np.int32)
    return codes.astype("<i4", copy=False).view(np.uint8)


def _gap_codes(msg: SparseMessage) -> np.ndarray:
    """``gap << 1 | negative`` per sent element, uint64 (k,)."""
    gaps = np.diff(msg.indices, prepend=-1) - 1
    return (gaps.astype(np.uint64) << np.uint64(1)) | msg.negative.astype(np.uint64)


def _varint_lengths(codes: np.ndarray) -> np.ndarray:
    """LEB128 length in bytes of each code, uint8 (k,)."""
    lengths = np.ones(codes.size, dtype=np.uint8)
    for j in range(1, _MAX_VARINT_BYTES):
        lengths += codes >= np.uint64(1 << (7 * j))
    return lengths


def _varint_body(codes: np.ndarray) -> np.ndarray:
    lengths = _varint_lengths(codes)
    ends = np.cumsum(lengths, dtype=np.int64)
    out = np.empty(int(ends[-1]) if codes.size else 0, dtype=np.uint8)
    starts = ends - lengths
    for j in range(_MAX_VARINT_BYTES):
        sel = np.flatnonzero(lengths > j) if j else slice(None)
        chunk = ((codes[sel] >> np.uint64(7 * j)) & np.uint64(0x7F)).astype(np.uint8)
        chunk |= (lengths[sel] > j + 1).astype(np.uint8) << 7
        out[starts[sel] + j] = chunk
    return out


def _varint_decode(body: np.ndarray) -> np.ndarray:
    """LEB128 bytes -> codes, uint64 (k,)."""
    if body.size == 0:
        return np.zeros(0, dtype=np.uint64)
    last = body < 0x80
    value_id = np.cumsum(last) - last  # which code each byte belongs to
    starts = np.flatnonzero(np.concatenate([[True], last[:-1]]))
    position = np.arange(body.size) - starts[value_id]
    codes = np.zeros(starts.size, dtype=np.uint64)
    for j in range(_MAX_VARINT_BYTES):
        sel = np.flatnonzero(position == j)
        if sel.size == 0:
            break
        codes[value_id[sel]] |= (body[sel] & 0x7F).astype(np.uint64) << np.uint64(7 * j)
    return codes


def _bitmap_body(msg: SparseMessage) -> np.ndarray:
    mask = np.zeros(msg.numel, dtype=bool)
    mask[msg.indices] = True
    return np.concatenate([np.packbits(mask), np.packbits(msg.negative)])
