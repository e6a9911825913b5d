"""The Triton kernels of the GPU GTC path (threshold, selection of the sent elements, Strom encoding,
Strom decoding with aggregation), run by Triton's interpreter on CPU tensors and compared with the
compiled CPU loops bit for bit.

Skipped where Triton is not installed (CPU builds of torch come without it, so CI skips this; the
same kernels compiled for CUDA are compared with the CPU loops in ``tests/test_cuda.py`` on a GPU).
The interpreter is chosen by ``TRITON_INTERPRET=1`` before Triton is imported, so the check runs in a
child process.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed")
ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import torch
from asr_trainer.sync import gtc_triton
from asr_trainer.sync.gtc_kernels import CpuKernels
assert gtc_triton.interpreted()
gtc_triton.BLOCK = 256
cases = 0
for n in (0, 1, 255, 256, 257, 5000, 65_537):
    for tau in (0.0, 0.5, 2.0, 10.0):
        gen = torch.Generator().manual_seed(n)
        start, grad = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
        tau = float(torch.tensor(tau, dtype=torch.float32))
        for contribution in (grad, None):
            r_triton, r_cpu = start.clone(), start.clone()
            indices, negative = gtc_triton.threshold(r_triton, contribution, tau)
            expected = CpuKernels().threshold(r_cpu, contribution, tau)
            assert torch.equal(r_triton.view(torch.int32), r_cpu.view(torch.int32)), (n, tau)
            assert torch.equal(indices, torch.as_tensor(expected.indices, dtype=torch.int64)), (n, tau)
            assert torch.equal(negative, torch.as_tensor(expected.negative)), (n, tau)
            assert negative.dtype == torch.bool and indices.dtype == torch.int64
            cases += indices.numel() > 0
assert cases >= 30, cases  # 56 cases, 34 of them send something
print("checked", cases)
"""

ROUNDS = """
import pytest, torch
from asr_trainer.sync import codec, gtc_triton
from asr_trainer.sync.gtc_kernels import CpuKernels, TorchKernels
gtc_triton.BLOCK = 256
gtc_triton.available = lambda *tensors: True  # the CPU tensors go through the kernels
n = 20_000
gen = torch.Generator().manual_seed(3)
grads = [[torch.randn(n, generator=gen) for _ in range(3)] for _ in range(3)]
for encoding in ("strom", "compact"):
    cpu, tri = CpuKernels(), TorchKernels()
    res_cpu, res_tri = [torch.zeros(n) for _ in range(3)], [torch.zeros(n) for _ in range(3)]
    out_cpu, out_tri = torch.empty(n), torch.empty(n)
    for step, tau in enumerate((1.5, 2.5, 0.25)):  # the last round dense enough to reset all of out
        payloads_cpu = [cpu.encode(cpu.threshold(r, g, tau), encoding) for r, g in zip(res_cpu, grads[step])]
        sent = [tri.threshold(r, g, tau) for r, g in zip(res_tri, grads[step])]
        assert isinstance(sent[0], gtc_triton.Selection)
        payloads_tri = [tri.encode(m, encoding) for m in sent]
        for a, b in zip(payloads_tri, payloads_cpu):
            assert torch.equal(a, b), (encoding, step)
        mean_cpu = cpu.aggregate(payloads_cpu, out_cpu, encoding)
        mean_tri = tri.aggregate(payloads_tri, out_tri, encoding)
        assert torch.equal(mean_tri.view(torch.int32), mean_cpu.view(torch.int32)), (encoding, step)
        assert mean_tri.count_nonzero() > 0
good = codec.encode(CpuKernels().threshold(torch.zeros(n), grads[0][0], 1.0), "strom")
bad_kind, outside = good.clone(), good.clone()
bad_kind[0] = codec.VARINT
outside[-4:] = torch.tensor([255, 255, 255, 127], dtype=torch.uint8)
for payload, message in ((bad_kind, "kind is not strom"), (outside, "index outside")):
    with pytest.raises(ValueError, match=message):
        TorchKernels().aggregate([good, payload], torch.empty(n), "strom")
print("rounds equal")
"""


def _interpreted(script: str) -> str:
    """Runs ``script`` in a child Python with Triton's interpreter on; its stdout (it must exit 0)."""
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_triton_threshold_and_selection_equal_the_cpu_loops_in_the_interpreter():
    assert _interpreted(CHECK).startswith("checked")


def test_triton_strom_payloads_and_aggregates_equal_the_cpu_loops_in_the_interpreter():
    """Three members, three rounds, both encodings: the payloads byte for byte and the means bit for bit
    (Strom through kernels 3 and 4); a payload of another kind or with an index past the end is refused."""
    assert _interpreted(ROUNDS).strip().endswith("rounds equal")
