"""The Triton kernels of the GPU GTC path (threshold, then selection of the sent elements), run by
Triton's interpreter on CPU tensors and compared with the compiled CPU loops bit for bit.

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


def test_triton_threshold_and_selection_equal_the_cpu_loops_in_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    done = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("checked")
