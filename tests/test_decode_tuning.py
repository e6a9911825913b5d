"""The decoding setting (acoustic scale, blank penalty) tuned on dev only, by coordinate search."""

import numpy as np
import pytest

from asr_trainer.decode.greedy import GreedyDecoder
from asr_trainer.decode.tuning import Setting, decode_set, tune

ID2TOKEN = {0: "<blk>", 1: "A", 2: "B"}


def _posteriors(blank_margins: list[float]) -> np.ndarray:
    """Per frame: token 1 or 2 alternating, each behind blank by its margin (nats); a blank frame between."""
    frames = []
    for i, margin in enumerate(blank_margins):
        row = np.full(3, -10.0)
        row[0], row[1 + i % 2] = -1.0, -1.0 - margin
        frames += [row, np.array([-0.1, -10.0, -10.0])]
    return np.log(np.exp(np.array(frames)) / np.exp(np.array(frames)).sum(1, keepdims=True))


def test_setting_subtracts_the_penalty_from_blank_then_scales():
    lp = np.log(np.array([[0.5, 0.3, 0.2]]))
    out = Setting(scale=2.0, blank_penalty=1.5).apply(lp)
    np.testing.assert_allclose(out, 2.0 * (lp - np.array([[1.5, 0.0, 0.0]])))
    assert Setting().apply(lp) is lp  # the identity makes no copy
    assert lp[0, 0] == np.log(0.5)  # the input is never modified


def test_the_penalty_recovers_the_deleted_tokens_and_is_chosen_on_dev():
    greedy = GreedyDecoder(ID2TOKEN)
    posteriors = {"u1": _posteriors([0.5, 1.5, 2.5]), "u2": _posteriors([0.7, 1.2])}
    refs = {"u1": ["A", "B", "A"], "u2": ["A", "B"]}
    assert decode_set(greedy.decode, posteriors, refs)[0][2] == []  # blank wins every frame: all deleted
    tuning = tune(greedy.decode, posteriors, refs, scales=(1.0,), penalties=(0.0, 1.0, 2.0, 3.0))
    assert tuning.best == Setting(1.0, 3.0)  # the smallest penalty that emits every token
    assert tuning.wer[Setting(1.0, 0.0)] == 100.0 and tuning.wer[Setting(1.0, 3.0)] == 0.0
    assert [hyp for _, _, hyp in tuning.results] == [["A", "B", "A"], ["A", "B"]]


def _grid_decoder(errors: dict[tuple[float, float], int]):
    """A decoder whose hypothesis has ``errors[(scale, penalty)]`` deletions out of 10 reference words.

    It reads the setting back from its input: for log-probs ``[[0, 1, 0]]`` the setting's output is
    ``[[-penalty * scale, scale, 0]]``."""
    def decode(log_probs: np.ndarray) -> list[str]:
        scale = float(log_probs[0, 1])
        penalty = -float(log_probs[0, 0]) / scale
        return ["w"] * (10 - errors[(scale, round(penalty, 6))])
    return decode


def test_coordinate_search_reaches_the_joint_optimum_and_prefers_the_current_setting_on_ties():
    errors = {(s, p): 5 for s in (0.5, 1.0, 2.0) for p in (0.0, 1.0, 2.0)}
    errors[(2.0, 0.0)] = 4  # the best scale without a penalty ...
    errors[(2.0, 2.0)] = 3  # ... then the best penalty at that scale ...
    errors[(0.5, 2.0)] = 2  # ... then another scale at that penalty: the joint optimum
    posteriors, refs = {"u": np.array([[0.0, 1.0, 0.0]])}, {"u": ["w"] * 10}
    result = tune(_grid_decoder(errors), posteriors, refs, scales=(0.5, 1.0, 2.0), penalties=(0.0, 1.0, 2.0))
    assert result.best == Setting(0.5, 2.0) and result.wer[result.best] == 20.0
    assert result.wer[Setting(2.0, 0.0)] == 40.0 and result.wer[Setting(2.0, 2.0)] == 30.0
    flat = {k: 5 for k in errors}  # every setting ties: the first scale at the first penalty stays
    assert tune(_grid_decoder(flat), posteriors, refs, (0.5, 1.0, 2.0), (0.0, 1.0, 2.0)).best == Setting(0.5, 0.0)


def test_run_decoding_tunes_on_dev_only_and_applies_the_setting_to_test(monkeypatch, tmp_path):
    import asr_trainer.decode.driver as driver
    from asr_trainer.decode.config import DecodeConfig

    class Cut:
        def __init__(self, cid):
            self.id, self.supervisions = cid, []

    splits = {"dev": [Cut("dev-1")], "test": [Cut("test-1")]}
    tuned, decoded = [], []

    def spy_tune(decode, posteriors, refs, scales, penalties):
        tuned.append(sorted(posteriors))
        return driver.tune.__wrapped__(decode, posteriors, refs, scales, penalties)

    def spy_decode_set(decode, posteriors, refs, setting):
        decoded.append((sorted(posteriors), setting))
        return [(cid, refs[cid], ["A"]) for cid in posteriors]

    spy_tune.__wrapped__ = driver.tune
    monkeypatch.setattr(driver, "tune", spy_tune)
    monkeypatch.setattr(driver, "decode_set", spy_decode_set)
    monkeypatch.setattr(driver, "load_averaged_model", lambda *a: type("M", (), {"num_outputs": 3})())
    monkeypatch.setattr(driver, "load_cuts", lambda cuts_dir, corpus, split: splits[split])
    monkeypatch.setattr(driver, "compute_posteriors", lambda model, cuts, *a: {
        c.id: np.log(np.array([[0.6, 0.3, 0.1]])) for c in cuts})
    monkeypatch.setattr(driver, "references", lambda cuts, *a: {c.id: ["A"] for c in cuts})
    tokenizer = type("T", (), {"num_outputs": 3, "id2token": ID2TOKEN, "encode": staticmethod(lambda t: [])})()
    cfg = DecodeConfig(blank_penalties=(0.0, 1.0), bootstrap_replications=0, num_threads=0)
    info = driver.run_decoding(cfg, tmp_path, tmp_path, tmp_path, "greedy", tokenizer)
    assert tuned == [["dev-1"]]  # one tuning, on dev's posteriors only
    assert decoded == [(["test-1"], Setting(1.0, 1.0))]  # test decoded once, with dev's choice
    assert info["blank_penalty"] == 1.0 and info["tuned_on"] == "dev"
    assert set(info["dev_wer_by_setting"]) == {"scale1-bp0", "scale1-bp1"}


@pytest.mark.parametrize("bad", [(), (-1.0,)])
def test_blank_penalty_grid_is_validated(bad):
    from asr_trainer.decode.config import DecodeConfig

    with pytest.raises(ValueError, match="blank_penalties"):
        DecodeConfig(blank_penalties=bad)
