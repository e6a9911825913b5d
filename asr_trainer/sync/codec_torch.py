"""The GTC wire formats of :mod:`asr_trainer.sync.codec`, as torch operations on any device.

Same payloads, byte for byte, as the compiled CPU loops (tested): 1 byte kind, 4
bytes tau (float32, little endian), then a STROM, VARINT or BITMAP body. Every
step is a whole-tensor torch operation on the message's device, so on a GPU the
indices, signs and payloads never leave it; the only host reads are a few
scalars that size the outputs (``k``, the varint body's length, the
bounds check), the same synchronisations ``torch.nonzero`` makes.

Parallel formulations of the sequential CPU loops:

``STROM``   ``code = index << 1 | negative`` as int32, its 4 bytes little endian.
``VARINT``  per code its byte count ``1 + sum_b [code >= 2**(7b)]``, an exclusive
            cumulative sum gives each code's first byte, then one scatter per
            byte position ``b`` (codes shorter than ``b + 1`` bytes write into a
            spare slot past the end). Decoding: a byte below 0x80 ends a code, a
            cumulative sum of those ends numbers the codes, each byte's shift is
            ``7 *`` (its position - its code's first position), a scatter-add
            assembles the codes, a cumulative sum of ``gap + 1`` gives the indices.
``BITMAP``  presence bits (MSB first, ``np.packbits`` order) by packing 8 flags per
            byte, then the sign bits the same way; decoding unpacks them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

import torch

from asr_trainer.sync.codec import BITMAP, HEADER_BYTES, KIND_NAMES, STROM, VARINT

MAX_VARINT_BYTES = 9  # a code below 2**63 takes at most 9 LEB128 bytes


@dataclass(frozen=True)
class TorchMessage:
    """Sent elements of one worker on the residual's device: ``indices`` int64 (k,) sorted, unique;
    ``negative`` bool (k,); ``tau`` the float32-rounded threshold; ``numel`` the vector's length."""

    indices: torch.Tensor
    negative: torch.Tensor
    tau: float
    numel: int

    @property
    def count(self) -> int:
        """Sent elements k."""
        return self.indices.numel()

    def values(self) -> torch.Tensor:
        """The sent values, float32 (k,) on the message's device: ``+tau`` or ``-tau``."""
        tau = float(self.tau)  # kernel arguments, no copy to the device
        return torch.where(self.negative, -tau, tau).to(torch.float32)


def encode(msg: TorchMessage, encoding: Literal["strom", "compact"] = "compact") -> torch.Tensor:
    """The payload of ``msg``: uint8 (HEADER_BYTES + body,) on the message's device, the bytes of
    :func:`asr_trainer.sync.codec.encode` for the same message."""
    if encoding == "strom":
        if msg.numel >= 2**31:
            raise ValueError("Strom's int32 encoding holds at most 2**31 elements")
        kind, body = STROM, _strom_body(msg)
    else:
        kind, body = _compact_body(msg)
    header = bytes([kind]) + struct.pack("<f", msg.tau)
    payload = torch.empty(HEADER_BYTES + body.numel(), dtype=torch.uint8, device=body.device)
    for i, byte in enumerate(header):  # scalar fills: a copy from pageable host memory would wait for the GPU
        payload[i] = byte
    payload[HEADER_BYTES:] = body
    return payload


def decode(payload: torch.Tensor, numel: int) -> TorchMessage:
    """Inverse of :func:`encode` (and of the CPU codec's encode) on the payload's device; ``numel`` is the
    length of the flat vector. A corrupt payload raises ValueError."""
    if payload.numel() < HEADER_BYTES:
        raise ValueError("GTC payload shorter than its header")
    header = payload[:HEADER_BYTES].cpu()  # 5 bytes
    kind = int(header[0])
    tau = float(header[1:].clone().view(torch.float32)[0])
    body = payload[HEADER_BYTES:]
    if kind == STROM:
        indices, negative = _read_strom(body)
    elif kind == VARINT:
        indices, negative = _read_varint(body)
    elif kind == BITMAP:
        indices, negative = _read_bitmap(body, numel)
    else:
        raise ValueError(f"unknown GTC payload kind {kind}")
    if indices.numel() and not _all_below(indices, numel):
        raise ValueError(f"corrupt GTC payload ({KIND_NAMES[kind]}): element index outside a vector of {numel}")
    return TorchMessage(indices, negative, tau, numel)


def _all_below(indices: torch.Tensor, numel: int) -> bool:
    """Whether every index is in ``[0, numel)``: one min/max reduction, one read of two numbers."""
    low, high = torch.aminmax(indices)
    return bool((low >= 0) & (high < numel))


def _compact_body(msg: TorchMessage) -> tuple[int, torch.Tensor]:
    """(VARINT or BITMAP, its body), whichever is smaller (ties: VARINT), as the CPU codec chooses."""
    bitmap = (msg.numel + 7) // 8 + (msg.count + 7) // 8
    if msg.count >= bitmap:  # a varint is at least one byte per element
        return BITMAP, _bitmap_body(msg)
    codes = _gap_codes(msg)
    lengths = _varint_lengths(codes)
    size = int(lengths.sum()) if codes.numel() else 0
    if size <= bitmap:
        return VARINT, _varint_body(codes, lengths, size)
    return BITMAP, _bitmap_body(msg)


def _strom_body(msg: TorchMessage) -> torch.Tensor:
    """uint8 (4k,): ``index << 1 | negative`` as little-endian 32-bit words (torch's byte order on CPUs and
    GPUs); codes of 2**31 and above wrap to negative int32, the same four bytes."""
    codes = (msg.indices << 1) | msg.negative
    if msg.numel > 2**30:  # codes may reach 2**31: wrap them explicitly
        codes = torch.where(codes >= 2**31, codes - 2**32, codes)
    return codes.to(torch.int32).view(torch.uint8)


def _read_strom(body: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`_strom_body`: uint8 (4k,) -> indices int64 (k,), negative bool (k,)."""
    k = body.numel() // 4
    words = body[: 4 * k].clone().view(torch.int32)  # the clone aligns the body (it starts at byte 5)
    codes = words.to(torch.int64) & 0xFFFFFFFF  # unsigned: indices of 2**30 and above
    return codes >> 1, (words & 1).bool()


def _gap_codes(msg: TorchMessage) -> torch.Tensor:
    """int64 (k,): ``gap << 1 | negative``, ``gap`` the unsent elements since the previous sent one."""
    previous = torch.cat([msg.indices.new_full((1,), -1), msg.indices[:-1]])
    return ((msg.indices - previous - 1) << 1) | msg.negative.to(torch.int64)


def _varint_lengths(codes: torch.Tensor) -> torch.Tensor:
    """int64 (k,): LEB128 bytes of each code, one per started 7 bits."""
    lengths = torch.ones_like(codes)
    for b in range(1, MAX_VARINT_BYTES):
        lengths += codes >= (1 << (7 * b))
    return lengths


def _varint_body(codes: torch.Tensor, lengths: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (size,): the LEB128 bytes of ``codes`` (int64 (k,)) of ``lengths`` bytes each, in order."""
    out = torch.empty(size + 1, dtype=torch.uint8, device=codes.device)  # slot ``size``: bytes no code has
    if size == 0:
        return out[:0]
    starts = torch.cumsum(lengths, 0) - lengths
    longest = int(lengths.max())
    for b in range(longest):
        byte = (codes >> (7 * b)) & 0x7F
        byte |= (lengths > b + 1).to(torch.int64) << 7  # continuation bit on all but a code's last byte
        where = torch.where(lengths > b, starts + b, size)
        out.scatter_(0, where, byte.to(torch.uint8))
    return out[:size]


def _read_varint(body: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`_varint_body` (a truncated last code is dropped) -> indices int64, negative bool."""
    ends = body < 0x80
    complete = int(ends.nonzero()[-1]) + 1 if bool(ends.any()) else 0
    body, ends = body[:complete], ends[:complete]
    if complete == 0:
        empty = torch.empty(0, dtype=torch.int64, device=body.device)
        return empty, empty.bool()
    ends64 = ends.to(torch.int64)
    code_of_byte = torch.cumsum(ends64, 0) - ends64  # which code each byte belongs to
    k = int(code_of_byte[-1]) + 1
    position = torch.arange(complete, dtype=torch.int64, device=body.device)
    first = torch.zeros(k, dtype=torch.int64, device=body.device)
    first[1:] = position[ends][:-1] + 1  # each code starts after the previous code's last byte
    shift = 7 * (position - first[code_of_byte])
    if int(shift.max()) > 7 * (MAX_VARINT_BYTES - 1):
        raise ValueError("corrupt GTC payload (varint): a code longer than 9 bytes")
    codes = torch.zeros(k, dtype=torch.int64, device=body.device)
    codes.scatter_add_(0, code_of_byte, (body.to(torch.int64) & 0x7F) << shift)  # disjoint bits: sum is OR
    return torch.cumsum((codes >> 1) + 1, 0) - 1, (codes & 1).bool()


_MSB_FIRST = (7, 6, 5, 4, 3, 2, 1, 0)


def _pack_bits(flags: torch.Tensor) -> torch.Tensor:
    """bool (n,) -> uint8 (ceil(n/8),), MSB first (``np.packbits``), zero padding bits."""
    n = flags.numel()
    padded = torch.zeros((n + 7) // 8 * 8, dtype=torch.uint8, device=flags.device)
    padded[:n] = flags
    weights = torch.tensor([1 << s for s in _MSB_FIRST], dtype=torch.uint8, device=flags.device)
    return (padded.view(-1, 8) * weights).sum(dim=1, dtype=torch.uint8)


def _unpack_bits(packed: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of :func:`_pack_bits`: uint8 (ceil(n/8),) -> bool (n,); padding bits ignored."""
    shifts = torch.tensor(_MSB_FIRST, dtype=torch.uint8, device=packed.device)
    return ((packed.unsqueeze(1) >> shifts) & 1).bool().reshape(-1)[:n]


def _bitmap_body(msg: TorchMessage) -> torch.Tensor:
    """uint8: ``numel`` presence bits, then the k sign bits, each padded to whole bytes."""
    present = torch.zeros(msg.numel, dtype=torch.bool, device=msg.indices.device)
    present[msg.indices] = True
    return torch.cat([_pack_bits(present), _pack_bits(msg.negative)])


def _read_bitmap(body: torch.Tensor, numel: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`_bitmap_body`; a body whose sign bytes do not fit its presence bits is refused."""
    nbytes = (numel + 7) // 8
    if body.numel() < nbytes:
        raise ValueError("GTC bitmap body shorter than its presence bits")
    indices = _unpack_bits(body[:nbytes], numel).nonzero().squeeze(1)
    sign_bytes = body.numel() - nbytes
    if sign_bytes < (indices.numel() + 7) // 8:
        raise ValueError("GTC bitmap body shorter than its sign bits")
    if sign_bytes > (indices.numel() + 7) // 8:
        raise ValueError("GTC bitmap body longer than the sign bits of its presence bits")
    return indices, _unpack_bits(body[nbytes:], indices.numel())
