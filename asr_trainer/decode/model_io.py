"""Rebuild a trained model for decoding: average the last epochs' checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path

from asr_trainer import checkpoint as ckpt
from asr_trainer.config import from_dict
from asr_trainer.errors import UserError
from asr_trainer.models import CtcModel, ModelConfig, build_model

log = logging.getLogger(__name__)


def select_epochs(exp_dir: Path, epoch: int, avg: int) -> list[Path]:
    """``epoch-(epoch-avg+1).pt .. epoch-<epoch>.pt`` (``epoch=0``: the last one saved); all must exist."""
    available = ckpt.list_numbered(Path(exp_dir), ckpt.EPOCH_RE)
    if not available:
        raise UserError(f"no epoch-N.pt checkpoints in {exp_dir}; train first")
    last = epoch or int(ckpt.EPOCH_RE.match(available[-1].name).group(1))
    paths = [Path(exp_dir) / f"epoch-{e}.pt" for e in range(max(last - avg + 1, 1), last + 1)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"cannot average {avg} epochs ending at {last}: missing {', '.join(missing)} in {exp_dir} "
                        f"(raise checkpoint.keep_last when training, or lower avg)")
    return paths


def load_averaged_model(exp_dir: Path, epoch: int = 0, avg: int = 1, device: str = "cpu") -> CtcModel:
    """The model of the selected epochs, weights averaged, in eval mode on ``device``."""
    paths = select_epochs(Path(exp_dir), epoch, avg)
    files = [ckpt.load(p, ckpt.ModelFile) for p in paths]
    last = files[-1]
    model = build_model(from_dict(ModelConfig, last.model_config, str(paths[-1])), last.num_outputs)
    if len(files) > 1:
        log.info("averaging %s", ", ".join(p.name for p in paths))
    model.load_state_dict(ckpt.average_model_states([f.model for f in files]))
    return model.to(device).eval()
