"""Test helper: run one GTC round of the torch path under a dispatch mode that records host reads.

Used by ``tests/test_gtc_torch.py`` (CPU) and ``tests/test_cuda.py`` (CUDA) to show that nothing dense
leaves the device: every op's outputs stay on the input's device, ``.numpy()`` is refused, and every
device-to-host read (``.item()``, ``.tolist()``, ``.cpu()``) is logged with its element count.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from asr_trainer.sync.gtc_kernels import TorchKernels


class HostReads(TorchDispatchMode):
    """Records the devices of every op's outputs (and the sizes of those not on ``device``) and every
    tensor read back to the host, by element count."""

    def __init__(self, device: str) -> None:
        super().__init__()
        self.device = torch.device(device).type
        self.devices: set[str] = set()
        self.host_reads: list[int] = []
        self.elsewhere: list[int] = [0]  # element counts of op outputs not on ``device`` (host scalars)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten._local_scalar_dense.default:
            self.host_reads.append(args[0].numel())
        to_host = func is torch.ops.aten._to_copy.default and (kwargs or {}).get("device") == torch.device("cpu")
        source = args[0]
        if func is torch.ops.aten.copy_.default:
            to_host, source = args[0].device.type == "cpu", args[1]
        if to_host and source.device.type != "cpu":
            self.host_reads.append(source.numel())
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.devices.add(t.device.type)
                if t.device.type != self.device:
                    self.elsewhere.append(t.numel())
        return out


def gtc_round_stays_on(device: str, monkeypatch: pytest.MonkeyPatch, numel: int = 50_000) -> HostReads:
    """Two workers' GTC round (threshold, encode, aggregate; strom and compact) through
    :class:`TorchKernels` on ``device``; any ``.numpy()`` conversion fails. Returns the log."""
    def refuse(*args, **kwargs):
        raise AssertionError("a GTC device tensor was converted to numpy")

    monkeypatch.setattr(torch.Tensor, "numpy", refuse)
    residual = torch.zeros(numel, device=device)
    grad = torch.randn(numel, device=device)
    kernels, out = TorchKernels(), torch.empty(numel, device=device)
    with HostReads(device) as log:
        for encoding in ("strom", "compact"):
            payloads = [kernels.encode(kernels.threshold(residual, grad, 0.5), encoding) for _ in range(2)]
            kernels.aggregate(payloads, out, encoding)
    return log
