"""Decode dev and test sets with a trained model: greedy CTC or HLG one-best, then score.

Posteriors (the network's forward pass) are computed once per set. The decoding setting
(:mod:`asr_trainer.decode.tuning`: the HLG acoustic scale and, for both methods, the blank
penalty) is tuned on a fixed subset of dev only, from those posteriors; then dev and each
test set are decoded once with it (the tuning utterances' results reused). The test sets
are read only after the tuning. Decoding ``scale * log_probs`` with scale 1 inside the
decoder is the same search as decoder-side scaling; greedy search ignores the scale.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from lhotse import CutSet

from asr_trainer.decode.config import DecodeConfig
from asr_trainer.decode.greedy import GreedyDecoder
from asr_trainer.decode.model_io import load_averaged_model
from asr_trainer.decode.dev_subset import tuning_subset
from asr_trainer.decode.parallel import BatchDecoder, Decoder, batch_decoder
from asr_trainer.decode.tuning import Setting, Tuning, decode_set, tune
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


@dataclass
class Split:
    """One decoded set: its cuts, ``{cut_id: log_probs (T', V)}`` in cut order, and the reference words."""

    name: str
    cuts: CutSet
    posteriors: dict[str, np.ndarray]
    refs: dict[str, list[str]]


def tune_on_dev(cfg: DecodeConfig, method: str, decode: BatchDecoder, dev: Split) -> Tuning:
    """The setting chosen on the fixed tuning subset of dev (:mod:`asr_trainer.decode.dev_subset`).

    It receives the dev split only, and is called before any test split is read."""
    ids = tuning_subset(dev.posteriors, cfg.tune_fraction, cfg.tune_min_utterances, cfg.tune_seed)
    tuning = tune(decode, {i: dev.posteriors[i] for i in ids}, dev.refs, cfg.search_axes(method),
                  Setting(cfg.start_scale, cfg.start_blank_penalty))
    log.info("tuned on %d of %d %s utterances (seed %d): acoustic scale %g, blank penalty %g after %d settings "
             "(WER by setting, in the order tried: %s)", len(ids), len(dev.posteriors), dev.name, cfg.tune_seed,
             tuning.best.scale, tuning.best.blank_penalty, len(tuning.wer),
             {k.label: round(v, 2) for k, v in tuning.wer.items()})
    for axis, where in tuning.at_bound.items():
        if where in ("lower", "upper"):
            log.warning("the %s chosen is at the %s bound of its range (%s): the optimum may lie beyond it", axis,
                        where, tuning.grids[axis])
    return tuning


def decode_rest(decode: BatchDecoder, split: Split, setting: Setting, done: Sequence[Utterance] = ()) -> list[Utterance]:
    """Every utterance of ``split`` under ``setting``, in cut order, reusing the results in ``done``
    (the tuning utterances' results at the chosen setting: decoding is deterministic)."""
    known = {cid: (cid, ref, hyp) for cid, ref, hyp in done}
    rest = {cid: lp for cid, lp in split.posteriors.items() if cid not in known}
    known.update({r[0]: r for r in decode_set(decode, rest, split.refs, setting)})
    return [known[cid] for cid in split.posteriors]


def run_decoding(cfg: DecodeConfig, exp_dir: Path, lang_dir: Path, cuts_dir: Path, method: str, tokenizer) -> dict:
    """Tune the decoding setting on dev, then decode dev and the test sets once each; write results into ``exp_dir``.

    ``tokenizer`` has ``encode``, ``num_outputs`` and ``id2token``. Returns the contents of
    ``decode-<method>.json``: the chosen setting, how it was tuned, and ``{set_name: WER json}``.
    """
    exp_dir = Path(exp_dir)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    model = load_averaged_model(exp_dir, cfg.epoch, cfg.avg, cfg.device)
    check_outputs(model, tokenizer.num_outputs, lang_dir)
    id2token = tokenizer.id2token if isinstance(tokenizer.id2token, Mapping) else dict(enumerate(tokenizer.id2token))
    decode_one, word_level = make_decoder(method, cfg, lang_dir, id2token)
    if not word_level:
        log.warning("units have no word boundaries: greedy output is scored as a TOKEN error rate")
    metric = "WER" if word_level else "TER"

    def read_split(name: str) -> Split:
        cuts = load_cuts(cuts_dir, cfg.corpus, name)
        split = Split(name, cuts, compute_posteriors(model, cuts, cfg.max_duration, cfg.device),
                      references(cuts, word_level, tokenizer.encode, id2token))
        if cfg.save_posteriors:
            save_posteriors(exp_dir / f"posteriors-{name}.npz", split.posteriors, split.refs)
        return split

    def score(split: Split, results: list[Utterance], setting: Setting) -> dict:
        name = f"{split.name}-{method}"
        wer = score_set(exp_dir, name, results, speakers_of(split.cuts),
                        f"{method}-epoch{cfg.epoch or 'last'}-avg{cfg.avg}-{setting.label}",
                        cfg.bootstrap_replications, metric)
        log.info("%s: %s %.2f%% [%.2f, %.2f] (%d %s)", name, metric, wer.wer, *wer.ci95, wer.ref_words,
                 "words" if word_level else "tokens")
        return wer.to_json()

    jobs = cfg.num_jobs if (method, cfg.decoder) == ("hlg", "kaldi") else 1  # see asr_trainer.decode.parallel
    seconds: dict[str, float] = {}  # wall time: "tune" (dev's forward pass and the search), then each set's decoding
    with batch_decoder(decode_one, jobs) as decode:
        clock = time.perf_counter()
        dev = read_split(cfg.dev_split)
        tuning = tune_on_dev(cfg, method, decode, dev)
        seconds["tune"] = time.perf_counter() - clock
        setting, summary = tuning.best, {}
        summary[f"{dev.name}-{method}"] = score(dev, decode_rest(decode, dev, setting, tuning.results), setting)
        seconds[dev.name] = time.perf_counter() - clock - seconds["tune"]
        for name in cfg.test_splits:  # read only now: tuning never sees a test split
            clock = time.perf_counter()
            test = read_split(name)
            summary[f"{name}-{method}"] = score(test, decode_rest(decode, test, setting), setting)
            seconds[name] = time.perf_counter() - clock
    log.info("decoding took %s s (%d processes)", {k: round(v, 1) for k, v in seconds.items()}, jobs)
    info = {"method": method, "acoustic_scale": setting.scale, "blank_penalty": setting.blank_penalty,
            "tuned_on": cfg.dev_split, "tuning_utterances": len(tuning.results), "tune_seed": cfg.tune_seed,
            "tuning_wer_by_setting": {k.label: v for k, v in tuning.wer.items()},
            "grids": tuning.grids, "at_bound": tuning.at_bound, "seconds": seconds, "jobs": jobs,
            "word_level": word_level, "sets": summary}
    (exp_dir / f"decode-{method}.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
