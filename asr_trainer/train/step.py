"""The CTC loss of a batch and its gradients; the strategy owns the optimizer step.

:func:`forward_backward` computes the CTC loss of a batch and leaves gradients
in ``.grad`` (it never steps); the strategy exchanges / compresses them and steps
the replica (:func:`asr_trainer.sync.replica.clipped_step`).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch

from asr_trainer.models import CtcModel


@dataclass
class BatchStats:
    """What one batch contributed.

    ``loss_sum``: summed CTC loss (nats) over utterances; ``frames``: model
    output frames; ``input_frames``: feature frames (10 ms); ``utterances``;
    ``ok``: False when the loss was NaN/inf (no gradient was left).
    """

    loss_sum: float = 0.0
    frames: int = 0
    input_frames: int = 0
    utterances: int = 0
    ok: bool = True

    def __iadd__(self, other: "BatchStats") -> "BatchStats":
        self.loss_sum += other.loss_sum
        self.frames += other.frames
        self.input_frames += other.input_frames
        self.utterances += other.utterances
        return self

    @property
    def loss_per_frame(self) -> float:
        return self.loss_sum / max(self.frames, 1)


def batch_loss(model: CtcModel, batch: dict, device: torch.device | str = "cpu", bf16: bool = False) -> tuple[torch.Tensor, BatchStats]:
    """Summed CTC loss of ``batch`` (a scalar tensor) and its stats; no backward."""
    feats = batch["features"].to(device)
    feat_lens = batch["feature_lens"].to(device)
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        if bf16 and str(device).startswith("cuda")
        else contextlib.nullcontext()
    )
    with autocast:
        log_probs, out_lens = model(feats, feat_lens)
    targets = torch.tensor([t for seq in batch["tokens"] for t in seq], dtype=torch.long)
    target_lens = torch.tensor([len(seq) for seq in batch["tokens"]], dtype=torch.long)
    loss = torch.nn.functional.ctc_loss(
        log_probs.float().transpose(0, 1), targets.to(device), out_lens, target_lens.to(device),
        blank=0, reduction="sum", zero_infinity=False,
    )
    stats = BatchStats(
        loss_sum=float(loss.detach()), frames=int(out_lens.sum()), input_frames=int(feat_lens.sum()),
        utterances=len(batch["tokens"]),
    )
    stats.ok = math.isfinite(stats.loss_sum)
    return loss, stats


def forward_backward(model: CtcModel, batch: dict, device: torch.device | str = "cpu", bf16: bool = False) -> BatchStats:
    """Forward + backward of ``batch``: adds d(loss/frames)/dθ to ``.grad``; does not step.

    The loss is normalised by the batch's output frames. A NaN/inf loss leaves
    the gradients untouched and returns ``ok=False``.
    """
    model.train()
    loss, stats = batch_loss(model, batch, device, bf16)
    if stats.ok:
        (loss / max(stats.frames, 1)).backward()
    return stats


def grad_norm(model: torch.nn.Module) -> float:
    """Global L2 norm of the current gradients."""
    norms = [p.grad.detach().norm() for p in model.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0
