"""Decode dev and test sets with a trained model: greedy CTC or HLG one-best, then score.

Posteriors are computed once per set. The decoding setting (:mod:`asr_trainer.decode.tuning`:
the HLG acoustic scale and, for both methods, the blank penalty) is tuned on the dev set
only, then applied to the test sets. Decoding ``scale * log_probs`` with scale 1 inside the
decoder is the same search as decoder-side scaling; greedy search ignores the scale.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
from lhotse import CutSet

from asr_trainer.decode.config import DecodeConfig
from asr_trainer.decode.greedy import GreedyDecoder
from asr_trainer.decode.model_io import load_averaged_model
from asr_trainer.decode.tuning import Decoder, Setting, decode_set, tune
from asr_trainer.decode.k2_crosscheck import save_posteriors
from asr_trainer.errors import UserError
from asr_trainer.models import CtcModel
from asr_trainer.report.wer import Utterance, score_set
from asr_trainer.data.config import DataConfig
from asr_trainer.data.cuts import load_cuts
from asr_trainer.data.dataset import AsrDataset, cut_text
from asr_trainer.data.sampler import make_valid_sampler

log = logging.getLogger(__name__)


@torch.no_grad()
def compute_posteriors(model: CtcModel, cuts: CutSet, max_duration: float, device: str = "cpu") -> dict[str, np.ndarray]:
    """``{cut_id: log_probs (T', V) float32}`` for every cut."""
    dataset = AsrDataset(encode=lambda text: [])
    sampler = make_valid_sampler(cuts, DataConfig(max_duration=max_duration, spec_augment=False))
    out = {}
    for cut_batch in sampler:
        batch = dataset[cut_batch]
        log_probs, lens = model(batch["features"].to(device), batch["feature_lens"].to(device))
        for i, cut_id in enumerate(batch["cut_ids"]):
            out[cut_id] = log_probs[i, : int(lens[i])].float().cpu().numpy()
    return out


def check_outputs(model: CtcModel, num_tokens: int, lang_dir: Path) -> None:
    """A model whose output dim differs from the lang dir's token count cannot be decoded with it."""
    if model.num_outputs != num_tokens:
        raise UserError(f"model has {model.num_outputs} outputs but {lang_dir} has {num_tokens} tokens "
                        f"(blank included); was the model trained with this lang dir?")


def make_decoder(method: str, cfg: DecodeConfig, lang_dir: Path, id2token: Mapping[int, str]) -> tuple[Decoder, bool]:
    """``(decode_fn, word_level)`` for ``method`` in ``greedy`` / ``hlg``."""
    if method == "greedy":
        greedy = GreedyDecoder(id2token)
        return greedy.decode, greedy.word_level
    if cfg.decoder == "k2":  # a clear UserError when k2 is not installed here
        from asr_trainer.decode.k2_backend import make_k2_decoder

        return make_k2_decoder(lang_dir, cfg.beam, cfg.max_active, cfg.min_active, cfg.device).decode, True
    try:
        from asr_trainer.decode.wfst import HlgDecoder
    except ImportError as e:
        raise UserError(f"HLG decoding is not available ({e}); use --method greedy") from None
    hlg = HlgDecoder(lang_dir, beam=cfg.beam, max_active=cfg.max_active, min_active=cfg.min_active,
                     acoustic_scale=1.0)
    return hlg.decode, True


def references(cuts: CutSet, word_level: bool, encode: Callable[[str], list[int]],
               id2token: Mapping[int, str]) -> dict[str, list[str]]:
    """Reference words per cut, or reference tokens when decoding is token-level (phone units, greedy)."""
    if word_level:
        return {c.id: cut_text(c).split() for c in cuts}
    return {c.id: [id2token[i] for i in encode(cut_text(c))] for c in cuts}


def speakers_of(cuts: CutSet) -> dict[str, str]:
    """``{cut_id: speaker}`` from the first supervision."""
    return {c.id: (c.supervisions[0].speaker or "unknown") if c.supervisions else "unknown" for c in cuts}


def run_decoding(cfg: DecodeConfig, exp_dir: Path, lang_dir: Path, cuts_dir: Path, method: str, tokenizer) -> dict:
    """Decode dev (tune the decoding setting there) and the test sets; write results into ``exp_dir``.

    ``tokenizer`` has ``encode``, ``num_outputs`` and ``id2token``. Returns
    ``{set_name: WER json}`` and writes ``decode-<method>.json`` with the chosen setting.
    """
    exp_dir = Path(exp_dir)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    model = load_averaged_model(exp_dir, cfg.epoch, cfg.avg, cfg.device)
    check_outputs(model, tokenizer.num_outputs, lang_dir)
    id2token = tokenizer.id2token if isinstance(tokenizer.id2token, Mapping) else dict(enumerate(tokenizer.id2token))
    decode, word_level = make_decoder(method, cfg, lang_dir, id2token)
    if not word_level:
        log.warning("units have no word boundaries: greedy output is scored as a TOKEN error rate")
    name_prefix = f"{method}-epoch{cfg.epoch or 'last'}-avg{cfg.avg}"
    scales = cfg.acoustic_scales if method == "hlg" else (1.0,)
    setting, table, summary = Setting(), {}, {}
    for i, split in enumerate((cfg.dev_split, *cfg.test_splits)):
        cuts = load_cuts(cuts_dir, cfg.corpus, split)
        posteriors = compute_posteriors(model, cuts, cfg.max_duration, cfg.device)
        refs = references(cuts, word_level, tokenizer.encode, id2token)
        if cfg.save_posteriors:
            save_posteriors(exp_dir / f"posteriors-{split}.npz", posteriors, refs)
        if i == 0:  # tuning decodes dev under every setting it tries: keep the chosen one's results
            tuning = tune(decode, posteriors, refs, scales, cfg.blank_penalties)
            setting, table, results = tuning.best, tuning.wer, tuning.results
            log.info("tuned on %s: acoustic scale %g, blank penalty %g (dev WER by setting: %s)", split,
                     setting.scale, setting.blank_penalty, {k.label: round(v, 2) for k, v in table.items()})
        else:
            results = decode_set(decode, posteriors, refs, setting)
        name = f"{split}-{method}"
        metric = "WER" if word_level else "TER"
        wer = score_set(exp_dir, name, results, speakers_of(cuts), f"{name_prefix}-{setting.label}",
                        cfg.bootstrap_replications, metric)
        log.info("%s: %s %.2f%% [%.2f, %.2f] (%d %s)", name, metric, wer.wer, *wer.ci95, wer.ref_words,
                 "words" if word_level else "tokens")
        summary[name] = wer.to_json()
    info = {"method": method, "acoustic_scale": setting.scale, "blank_penalty": setting.blank_penalty,
            "tuned_on": cfg.dev_split, "dev_wer_by_setting": {k.label: v for k, v in table.items()},
            "word_level": word_level, "sets": summary}
    (exp_dir / f"decode-{method}.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
