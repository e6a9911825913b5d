"""The torch (GPU) GTC path against the compiled CPU loops: the same bits on the same inputs.

Runs on CPU tensors in CI; ``tests/test_cuda.py`` repeats the comparison with CUDA tensors.
"""

import numpy as np
import pytest
import torch

from asr_trainer.sync import codec, codec_torch, gtc, gtc_torch
from asr_trainer.sync.codec import BITMAP, STROM, VARINT, SparseMessage
from asr_trainer.sync.codec_torch import TorchMessage
from asr_trainer.sync.gtc_kernels import CpuKernels, TorchKernels, kernels_for
from asr_trainer.testing.device import gtc_round_stays_on


def _vectors(numel: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    residual = torch.randn(numel, generator=gen) * 0.5
    residual[::97] = 0.0
    residual[1::89] = -0.0
    return residual, torch.randn(numel, generator=gen)


def _as_torch(msg: SparseMessage, device: str = "cpu") -> TorchMessage:
    return TorchMessage(torch.from_numpy(msg.indices.copy()).to(device),
                        torch.from_numpy(msg.negative.copy()).to(device), msg.tau, msg.numel)


def _bits(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().contiguous().view(torch.int32).numpy()


@pytest.mark.parametrize("tau", [0.5, 1.75, 4.0])
@pytest.mark.parametrize("numel", [1, 63, 64, 1000, 20_011])
def test_threshold_same_bits_as_compiled_loop(numel, tau):
    residual, grad = _vectors(numel, seed=numel)
    r_cpu, r_torch = residual.clone(), residual.clone()
    expected = gtc.accumulate_and_threshold(r_cpu, grad, gtc.as_float32(tau))
    got = gtc_torch.accumulate_and_threshold(r_torch, grad, gtc.as_float32(tau))
    np.testing.assert_array_equal(got.indices.numpy(), expected.indices)
    np.testing.assert_array_equal(got.negative.numpy(), expected.negative)
    np.testing.assert_array_equal(_bits(r_torch), _bits(r_cpu))
    assert got.count == expected.count and got.tau == expected.tau


def _message(numel: int, density: float, seed: int, tau: float = 0.125) -> SparseMessage:
    rng = np.random.default_rng(seed)
    k = int(round(numel * density))
    indices = np.sort(rng.choice(numel, size=k, replace=False)).astype(np.int64)
    return SparseMessage(indices, rng.random(k) < 0.5, tau, numel)


@pytest.mark.parametrize("density", [0.0, 1e-4, 0.01, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("encoding", ["strom", "compact"])
def test_payload_bytes_identical_and_decode_inverts_both(density, encoding):
    msg = _message(20_011, density, seed=int(density * 1000) + 1)
    cpu_payload = codec.encode(msg, encoding)
    torch_payload = codec_torch.encode(_as_torch(msg), encoding)
    np.testing.assert_array_equal(torch_payload.numpy(), cpu_payload.numpy())
    back = codec_torch.decode(cpu_payload, msg.numel)
    np.testing.assert_array_equal(back.indices.numpy(), msg.indices)
    np.testing.assert_array_equal(back.negative.numpy(), msg.negative)
    assert back.tau == msg.tau


def test_varint_codes_of_every_length_identical():
    numel = 2**40
    idx = np.array([0, 1, 200, 20_000, 3_000_000, 2**30, 2**35 + 7, numel - 1], dtype=np.int64)
    msg = SparseMessage(idx, np.arange(idx.size) % 3 == 0, 0.5, numel)
    kind, body = codec_torch._compact_body(_as_torch(msg))
    assert kind == VARINT
    np.testing.assert_array_equal(body.numpy(), codec._varint_body(msg))
    back = codec_torch.decode(codec.encode(msg, "compact"), numel)
    np.testing.assert_array_equal(back.indices.numpy(), idx)
    np.testing.assert_array_equal(back.negative.numpy(), msg.negative)


def test_bitmap_with_padding_bits_identical():
    msg = _message(70_003, 0.4, seed=5)
    body = codec_torch._bitmap_body(_as_torch(msg))
    np.testing.assert_array_equal(body.numpy(), codec._bitmap_body(msg))
    assert codec.choose_kind(msg) == BITMAP


def test_corrupt_payloads_are_refused_like_the_cpu_codec():
    msg = _message(1000, 0.05, seed=3)
    for encoding in ("strom", "compact"):
        payload = codec.encode(msg, encoding)
        with pytest.raises(ValueError, match="outside a vector"):
            codec_torch.decode(payload, 10)
    bitmap = codec.encode(_message(1000, 0.5, seed=4), "compact")
    assert int(bitmap[0]) == BITMAP
    with pytest.raises(ValueError, match="sign bits"):
        codec_torch.decode(bitmap[:-1], 1000)
    with pytest.raises(ValueError, match="longer than the sign bits"):
        codec_torch.decode(torch.cat([bitmap, torch.zeros(1, dtype=torch.uint8)]), 1000)
    with pytest.raises(ValueError, match="unknown GTC payload kind"):
        codec_torch.decode(torch.tensor([9, 0, 0, 0, 0], dtype=torch.uint8), 10)
    with pytest.raises(ValueError, match="longer than 9 bytes"):
        codec_torch.decode(torch.tensor([VARINT, 0, 0, 0, 0] + [0x80] * 10 + [1], dtype=torch.uint8), 10)


@pytest.mark.parametrize("members", [1, 2, 5])
def test_aggregate_same_bits_as_compiled_scatter(members):
    numel = 5000
    messages = [_message(numel, d, seed=s, tau=t) for s, (d, t) in
                enumerate([(0.3, 0.1), (0.05, 0.7), (0.5, 1e-3), (0.2, 3.0), (0.01, 0.25)][:members])]
    payloads = [codec.encode(m, "compact") for m in messages]
    expected = gtc.aggregate_payloads(payloads, torch.empty(numel), {})
    got, written = gtc_torch.aggregate_payloads(payloads, torch.full((numel,), 7.0))
    np.testing.assert_array_equal(_bits(got), _bits(expected))
    assert [w.tolist() for w in written] == [m.indices.tolist() for m in messages]
    np.testing.assert_array_equal(_bits(gtc_torch.aggregate([_as_torch(m) for m in messages], torch.empty(numel))),
                                  _bits(expected))


def test_kernels_reuse_their_buffer_zeroing_and_dividing_only_what_was_written():
    """Sparse rounds (only the written elements are reset and divided) and a dense one in between, each
    equal to the compiled loops' result into a fresh buffer; three members so the mean divides."""
    numel, kernels, out = 50_000, TorchKernels(), torch.empty(50_000)
    for step, density in enumerate([0.01, 0.002, 0.3, 0.001, 0.02]):
        messages = [_message(numel, density, seed=10 * step + w, tau=0.1 * (w + 1)) for w in range(3)]
        payloads = [codec.encode(m, "compact") for m in messages]
        expected = gtc.aggregate_payloads(payloads, torch.empty(numel), {})
        got = kernels.aggregate(payloads, out, "compact")
        assert got is out
        np.testing.assert_array_equal(_bits(got), _bits(expected), err_msg=f"step {step}")


def _round(kernels, residual: torch.Tensor, grads: list[torch.Tensor], encoding: str) -> torch.Tensor:
    out = torch.empty_like(residual)
    for g in grads:
        payloads = [kernels.encode(kernels.threshold(residual, g, 0.75), encoding)]
        kernels.aggregate(payloads, out, encoding)
    return out


@pytest.mark.parametrize("encoding", ["strom", "compact"])
def test_kernels_agree_over_rounds(encoding):
    residual, _ = _vectors(10_000, seed=11)
    grads = [_vectors(10_000, seed=s)[1] for s in range(4)]
    r_cpu, r_torch = residual.clone(), residual.clone()
    out_cpu = _round(CpuKernels(), r_cpu, grads, encoding)
    out_torch = _round(TorchKernels(), r_torch, grads, encoding)
    np.testing.assert_array_equal(_bits(out_torch), _bits(out_cpu))
    np.testing.assert_array_equal(_bits(r_torch), _bits(r_cpu))


def test_kernels_for_picks_the_compiled_loops_only_for_cpu_float32():
    assert isinstance(kernels_for(torch.zeros(4)), CpuKernels)
    assert isinstance(kernels_for(torch.zeros(4, dtype=torch.float64)), TorchKernels)
    assert isinstance(kernels_for(torch.zeros(4, device="meta")), TorchKernels)


def test_torch_path_never_copies_a_dense_vector_to_the_host(monkeypatch):
    log = gtc_round_stays_on("cpu", monkeypatch)
    assert log.devices == {"cpu"}
    assert log.host_reads and max(log.host_reads) <= codec.HEADER_BYTES  # scalars and the 5-byte header only


def test_strom_codes_above_two_to_the_31_wrap_like_the_compiled_writer():
    numel = 2**31 - 1  # Strom's limit: codes ``index << 1 | negative`` up to 2**32 - 1
    idx = np.array([0, 5, 2**30 - 1, 2**30, 2**30 + 7, numel - 1], dtype=np.int64)
    msg = SparseMessage(idx, np.array([True, False, True, True, False, True]), 0.25, numel)
    payload = codec_torch.encode(_as_torch(msg), "strom")
    np.testing.assert_array_equal(payload.numpy(), codec.encode(msg, "strom").numpy())
    back = codec_torch.decode(payload, numel)
    np.testing.assert_array_equal(back.indices.numpy(), idx)
    np.testing.assert_array_equal(back.negative.numpy(), msg.negative)
