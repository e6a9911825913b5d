"""The decoding setting (acoustic scale, blank penalty): tuned on a fixed dev subset only, then applied once."""

import numpy as np
import pytest

from asr_trainer.decode.config import DecodeConfig
from asr_trainer.decode.dev_subset import subset_size, tuning_subset
from asr_trainer.decode.greedy import GreedyDecoder
from asr_trainer.decode.parallel import batch_decoder
from asr_trainer.decode.tuning import Setting, decode_set, search_axes, tune

ID2TOKEN = {0: "<blk>", 1: "A", 2: "B"}


def _posteriors(blank_margins: list[float]) -> np.ndarray:
    """Per frame: token 1 or 2 alternating, each behind blank by its margin (nats); a blank frame between."""
    frames = []
    for i, margin in enumerate(blank_margins):
        row = np.full(3, -10.0)
        row[0], row[1 + i % 2] = -1.0, -1.0 - margin
        frames += [row, np.array([-0.1, -10.0, -10.0])]
    return np.log(np.exp(np.array(frames)) / np.exp(np.array(frames)).sum(1, keepdims=True))


def _batch(decode):
    return lambda batch: [decode(x) for x in batch]


def test_setting_subtracts_the_penalty_from_blank_then_scales():
    lp = np.log(np.array([[0.5, 0.3, 0.2]]))
    out = Setting(scale=2.0, blank_penalty=1.5).apply(lp)
    np.testing.assert_allclose(out, 2.0 * (lp - np.array([[1.5, 0.0, 0.0]])))
    assert Setting().apply(lp) is lp  # the identity makes no copy
    assert lp[0, 0] == np.log(0.5)  # the input is never modified


def test_the_penalty_recovers_the_deleted_tokens_and_the_choice_is_interior():
    greedy = _batch(GreedyDecoder(ID2TOKEN).decode)
    posteriors = {"u1": _posteriors([0.5, 1.5, 2.5]), "u2": _posteriors([0.7, 1.2])}
    refs = {"u1": ["A", "B", "A"], "u2": ["A", "B"]}
    assert decode_set(greedy, posteriors, refs)[0][2] == []  # blank wins every frame: all deleted
    axes = search_axes((1.0,), (0.0, 1.0, 2.0, 3.0), (0.1, 20.0), (0.0, 10.0))
    tuning = tune(greedy, posteriors, refs, axes, start=Setting(1.0, 0.0))
    assert tuning.best == Setting(1.0, 3.0)  # the smallest penalty that emits every token
    assert [tuning.wer[Setting(1.0, p)] for p in (0.0, 1.0, 2.0, 3.0, 4.0)] == [100.0, 60.0, 20.0, 0.0, 0.0]
    assert tuning.grids["blank penalty"][-1] == 4.0  # 3 was the grid's edge: extended, and 4 ties (stays at 3)
    assert tuning.at_bound == {"acoustic scale": "fixed", "blank penalty": None}
    assert [hyp for _, _, hyp in tuning.results] == [["A", "B", "A"], ["A", "B"]]


def test_the_dev_subset_is_fixed_seeded_and_independent_of_order():
    ids = [f"dev-{i:03d}" for i in range(40)]
    subset = tuning_subset(ids, 0.25, 0, seed=0)
    assert len(subset) == 10 and subset == sorted(subset) and set(subset) <= set(ids)
    assert tuning_subset(reversed(ids), 0.25, 0, seed=0) == subset
    assert tuning_subset(ids, 0.25, 0, seed=1) != subset
    assert subset_size(40, 0.25, 100) == 40 and subset_size(576, 0.25, 100) == 144 and subset_size(7, 0.1, 0) == 1
    with pytest.raises(ValueError, match="fraction"):
        tuning_subset(ids, 0.0, 0, seed=0)


def test_batch_decoding_in_two_processes_equals_one_in_order():
    greedy = GreedyDecoder(ID2TOKEN).decode
    batch = [_posteriors(list(np.linspace(0.1, 2.0, n)) ) - 0 for n in range(1, 9)]
    batch = [Setting(1.0, 1.0).apply(x) for x in batch]
    with batch_decoder(greedy, 1) as one, batch_decoder(greedy, 2) as two:
        assert two(batch) == one(batch) == [greedy(x) for x in batch]


def _fake_model(monkeypatch, driver, splits):
    """The driver with its model, cuts and posteriors replaced; ``reads`` records the splits read, in order."""
    reads = []

    class Cut:
        def __init__(self, cid):
            self.id, self.supervisions = cid, []

    def load_cuts(cuts_dir, corpus, split):
        reads.append(split)
        return [Cut(cid) for cid in splits[split]]

    monkeypatch.setattr(driver, "load_averaged_model", lambda *a: type("M", (), {"num_outputs": 3})())
    monkeypatch.setattr(driver, "load_cuts", load_cuts)
    monkeypatch.setattr(driver, "compute_posteriors", lambda model, cuts, *a: {
        c.id: _posteriors([0.5, 1.5]) for c in cuts})
    monkeypatch.setattr(driver, "references", lambda cuts, *a: {c.id: ["A", "B"] for c in cuts})
    return reads


def test_tuning_receives_dev_only_and_test_is_decoded_once_with_its_choice(monkeypatch, tmp_path):
    import asr_trainer.decode.driver as driver

    splits = {"dev": [f"dev-{i}" for i in range(8)], "test": ["test-1", "test-2"]}
    reads = _fake_model(monkeypatch, driver, splits)
    tuned, decoded = [], []

    def spy_tune(decode, posteriors, refs, axes, start):
        tuned.append((sorted(posteriors), list(reads)))
        return real_tune(decode, posteriors, refs, axes, start)

    def spy_decode_set(decode, posteriors, refs, setting=Setting()):
        decoded.append((sorted(posteriors), setting))
        return real_decode_set(decode, posteriors, refs, setting)

    real_tune, real_decode_set = driver.tune, driver.decode_set
    monkeypatch.setattr(driver, "tune", spy_tune)
    monkeypatch.setattr(driver, "decode_set", spy_decode_set)
    tokenizer = type("T", (), {"num_outputs": 3, "id2token": ID2TOKEN, "encode": staticmethod(lambda t: [])})()
    cfg = DecodeConfig(blank_penalties=(0.0, 1.0), start_blank_penalty=0.0, bootstrap_replications=0,
                       num_threads=0, tune_fraction=0.25, tune_min_utterances=0)
    info = driver.run_decoding(cfg, tmp_path, tmp_path, tmp_path, "greedy", tokenizer)

    subset = tuning_subset(splits["dev"], 0.25, 0, 0)
    assert tuned == [(subset, ["dev"])]  # one tuning, on the dev subset, before any test split was read
    assert reads == ["dev", "test"]
    chosen = Setting(1.0, 2.0)  # 1.5 nats of margin: penalty 2 emits both tokens; 3 ties, so it stays
    assert info["blank_penalty"] == 2.0 and info["tuned_on"] == "dev" and info["tuning_utterances"] == 2
    assert info["at_bound"] == {"acoustic scale": "fixed", "blank penalty": None}
    rest_of_dev = sorted(set(splits["dev"]) - set(subset))
    assert decoded[-2:] == [(rest_of_dev, chosen), (["test-1", "test-2"], chosen)]  # each once, dev's choice
    assert all(ids == subset for ids, _ in decoded[:-2])  # every other decoding is of the tuning subset
    assert set(info["tuning_wer_by_setting"]) == {"scale1-bp0", "scale1-bp1", "scale1-bp2", "scale1-bp3"}
    assert info["sets"]["dev-greedy"]["wer"] == info["sets"]["test-greedy"]["wer"] == 0.0


@pytest.mark.parametrize("overrides, match", [
    ({"blank_penalties": ()}, "blank_penalties"), ({"blank_penalties": (-1.0,)}, "blank_penalties"),
    ({"blank_penalties": (0.0, 12.0)}, "blank_penalty_range"), ({"acoustic_scale_range": (2.0, 1.0)}, "range"),
    ({"tune_fraction": 1.5}, "tune_fraction"), ({"num_jobs": 0}, "num_jobs")])
def test_bad_tuning_settings_are_clear_errors(overrides, match):
    with pytest.raises(ValueError, match=match):
        DecodeConfig(**overrides)
