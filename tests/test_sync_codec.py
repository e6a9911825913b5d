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
    body = codec._varint_body(msg) if kind == VARINT else codec._bitmap_body(msg)
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
    assert codec._varint_body(msg).tobytes() == want
    assert codec.body_bits(msg, VARINT) == 8 * len(want)
    _same(codec.decode(encode(msg, "compact"), msg.numel), msg)


def test_strom_round_trips_indices_above_2_to_the_30():
    numel = 2**31 - 1
    msg = SparseMessage(np.array([0, 2**30 - 1, 2**30, numel - 1], dtype=np.int64),
                        np.array([True, False, True, True]), 0.5, numel)
    _same(decode(encode(msg, "strom"), numel), msg)


def _reference_bodies(msg: SparseMessage) -> dict[int, bytes]:
    """Each kind's body written out with plain numpy and Python (the references for the compiled writers)."""
    codes = np.diff(msg.indices, prepend=-1) - 1 << 1 | msg.negative
    mask = np.zeros(msg.numel, dtype=bool)
    mask[msg.indices] = True
    return {
        STROM: (msg.indices << 1 | msg.negative).astype("<u4").tobytes(),
        VARINT: _leb128(int(c) for c in codes),
        BITMAP: np.packbits(mask).tobytes() + np.packbits(msg.negative).tobytes(),
    }


@pytest.mark.parametrize("numel", [1, 7, 9, 64, 1001, 20_003])
@pytest.mark.parametrize("density", [0.0, 0.003, 0.05, 0.3, 1.0])
def test_compiled_bodies_match_plain_references_and_round_trip(numel, density):
    msg = _message(numel, density, seed=numel)
    for kind, want in _reference_bodies(msg).items():
        writers = {STROM: lambda: encode(msg, "strom")[codec.HEADER_BYTES:].numpy(),
                   VARINT: lambda: codec._varint_body(msg), BITMAP: lambda: codec._bitmap_body(msg)}
        body = writers[kind]()
        assert body.tobytes() == want, kind
        assert codec.body_bits(msg, kind) == 8 * len(want)
        payload = torch.from_numpy(np.concatenate([np.array([kind, 0, 0, 0, 62], dtype=np.uint8), body]))
        back = decode(payload, numel)
        assert back.indices.dtype == np.int64 and back.negative.dtype == bool
        np.testing.assert_array_equal(back.indices, msg.indices)
        np.testing.assert_array_equal(back.negative, msg.negative)
    _same(decode(encode(msg, "compact"), numel), msg)


@pytest.mark.parametrize("last_bytes", [1, 2, 3, 4, 5])
def test_varint_codes_of_every_length_in_random_order(last_bytes):
    # random codes of 1..5 bytes, the last one (written apart from the others) of each length in turn
    rng = np.random.default_rng(last_bytes)
    lengths = np.append(rng.integers(1, 6, 500), last_bytes)
    low = np.where(lengths == 1, 0, 1 << (7 * (lengths - 1)))
    codes = np.minimum(rng.integers(low, 1 << (7 * lengths)), 2**32 - 1).astype(np.int64)
    gaps, negative = codes >> 1, (codes & 1).astype(bool)
    indices = np.cumsum(gaps + 1) - 1
    msg = SparseMessage(indices, negative, 0.5, int(indices[-1]) + 1)
    want = _leb128(int(c) for c in codes)
    assert codec._varint_body(msg).tobytes() == want
    assert codec._varint_size(indices) == len(want)
    back = decode(torch.from_numpy(np.frombuffer(bytes([VARINT, 0, 0, 0, 63]) + want, dtype=np.uint8).copy()),
                  msg.numel)
    np.testing.assert_array_equal(back.indices, indices)
    np.testing.assert_array_equal(back.negative, negative)


@pytest.mark.parametrize("numel", [2**31, 2**31 + 10, 2**40])
def test_gap_codes_of_32_bits_and_beyond(numel):
    # numel == 2**31: the last gap code is 2**32 - 1; beyond it codes need more than 32 bits
    indices = np.array([0, 5, numel - 2, numel - 1], dtype=np.int64)
    negative = np.array([True, False, True, True])
    msg = SparseMessage(indices, negative, 0.5, numel)
    want = [1, 8, (numel - 2 - 5 - 1) << 1 | 1, 1]
    assert codec._varint_body(msg).tobytes() == _leb128(want)
    assert codec._varint_size(indices) == len(_leb128(want))
    _same(decode(encode(msg, "compact"), numel), msg)


def test_empty_message_every_kind():
    msg = SparseMessage(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), 0.25, 13)
    assert codec._varint_body(msg).size == 0
    assert codec._bitmap_body(msg).tolist() == [0, 0]
    for encoding in ("strom", "compact"):
        _same(decode(encode(msg, encoding), 13), msg)


def test_bitmap_padding_bits_are_ignored_and_short_or_long_bodies_rejected():
    payload = np.array([BITMAP, 0, 0, 0, 63, 0b10000001, 0b11111111, 0b10000000], dtype=np.uint8)
    out = decode(torch.from_numpy(payload), 9)  # bits 9..15 of the presence bytes are padding
    assert out.indices.tolist() == [0, 7, 8] and out.negative.tolist() == [True, False, False]
    with pytest.raises(ValueError, match="shorter than its sign bits"):
        decode(torch.from_numpy(payload[:-1]), 9)  # three sent elements need a byte of sign bits
    with pytest.raises(ValueError, match="longer than the sign bits"):
        decode(torch.from_numpy(np.append(payload, np.uint8(0))), 9)  # a second sign byte for three elements


def test_bitmap_writer_overwrites_whatever_the_buffer_held():
    msg = _message(1001, 0.3, seed=5)
    out = np.full(codec._bitmap_bytes(msg), 0xFF, dtype=np.uint8)
    codec._write_bitmap(*msg.arrays(), out)
    assert out.tobytes() == _reference_bodies(msg)[BITMAP]


def test_kernels_compile_where_no_cache_directory_is_writable(monkeypatch):
    from numba.core import caching

    from asr_trainer.sync.jit import kernel

    # no cache directory found, as with a read-only install and a read-only HOME
    monkeypatch.setattr(caching.FunctionCache._impl_class, "_locator_classes", [])

    def twice(x):
        return 2 * x

    with pytest.raises(RuntimeError):  # what numba's own njit(cache=True) does there
        caching.FunctionCache(twice)
    assert kernel(twice)(21) == 42


@pytest.mark.parametrize("encoding", ["strom", "compact"])
def test_payload_naming_an_element_beyond_the_vector_is_rejected(encoding):
    msg = SparseMessage(np.array([3, 90], dtype=np.int64), np.array([False, True]), 0.5, 100)
    payload = encode(msg, encoding)
    assert np.array_equal(decode(payload, 100).indices, [3, 90])
    with pytest.raises(ValueError, match="corrupt GTC payload.*vector of 50"):
        decode(payload, 50)  # the receiver's vector is shorter: the scatter would write out of bounds
