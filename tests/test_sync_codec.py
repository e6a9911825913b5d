"""GTC wire formats: exact round trips, sizes, and the per-message choice."""

import numpy as np
import pytest
import torch

from asr_trainer.sync import codec
from asr_trainer.sync.codec import BITMAP, STROM, VARINT, SparseMessage, decode, encode


def _message(numel: int, density: float, seed: int = 0, tau: float = 0.125) -> SparseMessage:
    rng = np.random.default_rng(seed)
    k = int(round(numel * density))
    indices = np.sort(rng.choice(numel, size=k, replace=False)).astype(np.int64)
    return SparseMessage(indices, rng.random(k) < 0.5, tau, numel)


def _same(a: SparseMessage, b: SparseMessage) -> None:
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.negative, b.negative)
    assert a.tau == b.tau and a.numel == b.numel


@pytest.mark.parametrize("density", [0.0, 1e-4, 0.01, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("encoding", ["strom", "compact"])
def test_round_trip_is_exact(density, encoding):
    msg = _message(20_011, density, seed=int(density * 1000))
    _same(decode(encode(msg, encoding), msg.numel), msg)


@pytest.mark.parametrize("kind", [VARINT, BITMAP])
def test_each_compact_kind_round_trips_including_large_gaps(kind):
    # gaps needing 1..5 varint bytes, first and last element, both signs
    numel = 2**31 - 1 if kind == VARINT else 70_000
    idx = np.array([0, 1, 200, 20_000, 69_999] + ([3_000_000, numel - 1] if kind == VARINT else []))
    msg = SparseMessage(idx.astype(np.int64), np.arange(idx.size) % 2 == 0, 0.5, numel)
    body = codec._varint_body(codec._gap_codes(msg)) if kind == VARINT else codec._bitmap_body(msg)
    payload = torch.from_numpy(np.concatenate([np.array([kind, 0, 0, 0, 63], dtype=np.uint8), body]))
    out = decode(payload, numel)
    np.testing.assert_array_equal(out.indices, msg.indices)
    np.testing.assert_array_equal(out.negative, msg.negative)
    assert out.tau == 0.5


def test_strom_is_32_bits_per_sent_element():
    msg = _message(10_000, 0.03)
    assert encode(msg, "strom").numel() == codec.HEADER_BYTES + 4 * msg.indices.size


def test_choice_per_message_is_the_smaller_body():
    sparse, dense = _message(100_000, 0.001), _message(100_000, 0.3)
    assert codec.choose_kind(sparse) == VARINT
    assert codec.choose_kind(dense) == BITMAP
    for msg in (sparse, dense, _message(100_000, 0.05), _message(100_000, 0.12)):
        kind = codec.choose_kind(msg)
        other = BITMAP if kind == VARINT else VARINT
        assert codec.body_bits(msg, kind) <= codec.body_bits(msg, other)
        assert encode(msg, "compact")[0].item() == kind
        assert encode(msg, "compact").numel() * 8 == codec.body_bits(msg, kind) + 8 * codec.HEADER_BYTES
        assert codec.body_bits(msg, kind) < codec.body_bits(msg, STROM)


def test_values_are_plus_minus_tau():
    msg = SparseMessage(np.array([2, 5]), np.array([True, False]), 0.25, 8)
    np.testing.assert_array_equal(msg.values(), np.array([-0.25, 0.25], dtype=np.float32))


def _leb128(values) -> bytes:
    """Plain LEB128, one value at a time (the reference for the vectorised encoder)."""
    out = bytearray()
    for v in values:
        while True:
            byte, v = v & 0x7F, v >> 7
            out.append(byte | (0x80 if v else 0))
            if not v:
                break
    return bytes(out)


def test_varint_body_is_plain_leb128_of_gap_codes():
    # gaps chosen so that codes need 1, 2, 3, 4 and 5 bytes, in a mixed order
    gaps = [0, 63, 64, 8191, 8192, 2**20, 2**27, 2**28, 5, 2**30, 0, 1]
    indices = np.cumsum(np.array(gaps, dtype=np.int64) + 1) - 1
    negative = np.arange(len(gaps)) % 3 == 0
    msg = SparseMessage(indices, negative, 0.5, int(indices[-1]) + 1)
    want = _leb128((g << 1) | int(n) for g, n in zip(gaps, negative))
    assert codec._varint_body(codec._gap_codes(msg)).tobytes() == want
    assert codec.body_bits(msg, VARINT) == 8 * len(want)
    _same(codec.decode(encode(msg, "compact"), msg.numel), msg)


def test_strom_round_trips_indices_above_2_to_the_30():
    numel = 2**31 - 1
    msg = SparseMessage(np.array([0, 2**30 - 1, 2**30, numel - 1], dtype=np.int64),
                        np.array([True, False, True, True]), 0.5, numel)
    _same(decode(encode(msg, "strom"), numel), msg)
