"""Dense all-reduce of N one-utterance workers as ONE forward/backward (the simulated cluster's fast path).

Under dense all-reduce every worker computes ``g_w = d(loss_w / frames_w)/dθ`` on its own batch and the
group applies the mean of the ``g_w``. When every worker's batch is one utterance, the N utterances can go
through the model as one padded batch: with per-utterance batch statistics
(:func:`asr_trainer.models.base.per_sample_batch_norm`) each utterance sees exactly what it would alone, and
the backward of ``sum_w loss_w / frames_w`` leaves ``sum_w g_w`` in ``.grad``: the same sum as the per-worker
path up to float rounding, at the speed of a large batch. Dropout masks come from one random stream (the
first worker's) instead of one per worker: the same distribution, other draws.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Sequence

import torch

from asr_trainer.models import CtcModel
from asr_trainer.train.step import BatchStats


def stack_utterances(batches: Sequence[dict]) -> dict:
    """One padded batch ``{"features" (N, T, F), "feature_lens" (N,), "tokens"}`` of N one-utterance batches."""
    feats = [b["features"][0, : int(b["feature_lens"][0])] for b in batches]
    return {
        "features": torch.nn.utils.rnn.pad_sequence(feats, batch_first=True),
        "feature_lens": torch.cat([b["feature_lens"][:1] for b in batches]),
        "tokens": [b["tokens"][0] for b in batches],
    }


@contextlib.contextmanager
def per_sample_norm(model: CtcModel) -> Iterator[None]:
    """``model`` with per-utterance batch statistics inside the block."""
    model.per_sample_norm = True
    try:
        yield
    finally:
        model.per_sample_norm = False


def batched_forward_backward(model: CtcModel, batches: Sequence[dict], device: torch.device | str = "cpu",
                             bf16: bool = False) -> list[BatchStats] | None:
    """Add ``sum_w d(loss_w / frames_w)/dθ`` over the one-utterance ``batches`` to ``.grad``; per batch its stats.

    Returns None, with no gradient added, when a batch holds more than one utterance or a loss is not finite
    (the caller then takes the per-worker path, which handles both). The model's BatchNorm running
    statistics move by the mean of the utterances' updates even then: the caller restores them.
    """
    if any(len(b["tokens"]) != 1 for b in batches):
        return None
    batch = stack_utterances(batches)
    model.train()
    feats, feat_lens = batch["features"].to(device), batch["feature_lens"].to(device)
    autocast = (torch.autocast(device_type="cuda", dtype=torch.bfloat16) if bf16 and str(device).startswith("cuda")
                else contextlib.nullcontext())
    with per_sample_norm(model), autocast:
        log_probs, out_lens = model(feats, feat_lens)
    targets = torch.tensor([t for seq in batch["tokens"] for t in seq], dtype=torch.long, device=device)
    target_lens = torch.tensor([len(seq) for seq in batch["tokens"]], dtype=torch.long, device=device)
    losses = torch.nn.functional.ctc_loss(log_probs.float().transpose(0, 1), targets, out_lens, target_lens,
                                          blank=0, reduction="none", zero_infinity=False)
    values = losses.detach().cpu().tolist()
    if not all(math.isfinite(v) for v in values):
        return None
    (losses / out_lens.clamp(min=1).to(losses.dtype)).sum().backward()
    return [BatchStats(loss_sum=v, frames=int(o), input_frames=int(i), utterances=1)
            for v, o, i in zip(values, out_lens.tolist(), feat_lens.tolist())]
