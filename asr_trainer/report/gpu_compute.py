"""A worker's compute and GTC encode/decode per step on the cost-model scenario's GPU.

The study's runs train on a simulated cluster (on CPU or one GPU), so their measured step
times say how fast the SIMULATION ran, not how fast one GPU of the modelled cluster would: on
2 CPU cores a worker step takes about half a second, on a GPU the same step about 13 ms, and
feeding the CPU figure to the cost model hides every communication cost behind compute. The
speed-up column therefore models the GPU named here:

* compute per worker step: ``max(step_floor_s, 6 * params * frames / sustained_flops)``, with
  ``frames`` the run's per-worker batch in 10 ms feature frames (``data.max_duration * 100``): a
  small model is launch-bound (the floor, measured), a large one FLOP-bound;
* a GTC round (threshold, encode, decode, aggregate of one message):
  ``max(gtc_floor_s, 4 * params / gtc_bytes_per_s)``, launch-bound for small models, bandwidth-
  bound for large ones.

Defaults: measured on one NVIDIA H100 80GB HBM3 on 2026-11-26 (README "The GPU path"): a training
step of the default 2 M-parameter TDNN-LSTM took 11.9-13.9 ms for 2.3-60 s batches (flat, launch-
bound). The strom GTC round at 1% density, remeasured after its Strom encoding and decoding moved
into Triton kernels (second GPU sitting of 2026-11-26): 0.17 ms at 1 M elements, 0.20-0.26 ms at 10 M
(the floor: the slower), 557-575 GB/s of fp32 gradient at 100 M (0.47 ms and 350-390 GB/s before).
``sustained_flops`` is not measured: 200 TFLOP/s is a stated assumption (bf16 dense on an H100, about
a fifth of peak), reached only by models far larger than ours.
"""

from __future__ import annotations

from dataclasses import dataclass

FRAMES_PER_SECOND = 100  # 10 ms feature frames
FP32_BYTES = 4


@dataclass(frozen=True)
class GpuCompute:
    """Step-time model of one GPU of the modelled cluster (seconds, FLOP/s, bytes/s)."""

    name: str = "NVIDIA H100 80GB HBM3"
    step_floor_s: float = 0.013
    sustained_flops: float = 2.0e14
    gtc_floor_s: float = 2.6e-4
    gtc_bytes_per_s: float = 5.6e11

    def __post_init__(self) -> None:
        bad = [k for k in ("step_floor_s", "sustained_flops", "gtc_bytes_per_s") if getattr(self, k) <= 0]
        if self.gtc_floor_s < 0:
            bad.append("gtc_floor_s")
        if bad:
            raise ValueError(f"gpu setting(s) out of range: {', '.join(bad)}")

    def compute_s(self, params: int, batch_seconds: float) -> float:
        """Forward + backward of one worker's minibatch of ``batch_seconds`` of audio, seconds."""
        flops = 6.0 * params * batch_seconds * FRAMES_PER_SECOND
        return max(self.step_floor_s, flops / self.sustained_flops)

    def gtc_round_s(self, params: int) -> float:
        """Threshold + encode + decode + aggregate of one GTC message over ``params`` elements, seconds."""
        return max(self.gtc_floor_s, FP32_BYTES * params / self.gtc_bytes_per_s)
