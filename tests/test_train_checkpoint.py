"""The checkpoint package: averaging, pruning, RNG state, the typed schema, complete sets and where a run resumes."""

import json
import random

import pytest
import torch

from asr_trainer import checkpoint as ckpt
from asr_trainer.checkpoint.files import prune
from asr_trainer.errors import UserError
from asr_trainer.rng import restore_rng, rng_state
from asr_trainer.sync import SimCommunicator

SIM = ckpt.Place(None, (None,), True)  # one process holding every worker
SETTINGS = ckpt.RunSettings({"kind": "tdnn"}, {"name": "none"}, 1, 10)


def _state(seed):
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(3, 2, generator=g), "bn.num_batches_tracked": torch.tensor(seed)}


def test_average_equals_hand_average():
    states = [_state(s) for s in (1, 2, 3)]
    avg = ckpt.average_model_states(states[1:])
    hand = (states[1]["w"] + states[2]["w"]) / 2
    assert torch.allclose(avg["w"], hand, atol=1e-7)
    assert int(avg["bn.num_batches_tracked"]) == 3  # integer buffers from the last


def test_prune_keeps_last_k_in_numeric_order(tmp_path):
    for n in (1, 2, 10, 11):
        ckpt.save_file(tmp_path / f"epoch-{n}.pt", {})
    ckpt.save_file(tmp_path / "checkpoint-5.pt", {})
    deleted = prune(tmp_path, 2, ckpt.EPOCH_RE)
    assert [p.name for p in deleted] == ["epoch-1.pt", "epoch-2.pt"]
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["checkpoint-5.pt", "epoch-10.pt", "epoch-11.pt"]


def test_rng_state_round_trip():
    state = rng_state()
    a = (random.random(), torch.rand(2))
    restore_rng(state)
    b = (random.random(), torch.rand(2))
    assert a[0] == b[0] and torch.equal(a[1], b[1])


def test_a_checkpoint_of_the_old_format_is_refused_naming_what_it_lacks(tmp_path):
    old = {"replica": {"model": {"w": torch.ones(2)}, "optimizer": {}}, "sampler": {}, "rng": {}, "epoch": 1,
           "step": 3, "model_config": {}, "num_outputs": 4, "meta": {}}
    ckpt.save_file(tmp_path / "epoch-1.pt", old)
    with pytest.raises(ckpt.SchemaError, match=r"lacks schema, kind, model\)"):
        ckpt.load(tmp_path / "epoch-1.pt", ckpt.ModelFile)
    model = ckpt.ModelFile({"w": torch.ones(2)}, {}, 4, 1, 3)
    ckpt.save(tmp_path / "m.pt", model)
    with pytest.raises(ckpt.SchemaError, match="not a ProcessState"):  # another kind is never misread
        ckpt.load(tmp_path / "m.pt", ckpt.ProcessState)
    assert torch.equal(ckpt.load(tmp_path / "m.pt", ckpt.ModelFile).model["w"], torch.ones(2))


def test_a_schema_2_process_state_is_refused_naming_the_data_layout_it_lacks(tmp_path):
    state = ckpt.ProcessState(1, 3, True, SETTINGS, {}, {0: {"sampler": {}, "rng": {}}}, {}, {})
    ckpt.save(tmp_path / "strategy-step3.pt", state)
    old = ckpt.load_file(tmp_path / "strategy-step3.pt")
    ckpt.save_file(tmp_path / "strategy-step3.pt", {**old, "schema": 2})
    with pytest.raises(ckpt.SchemaError, match=r"\(schema 2, kind 'ProcessState'; it lacks data\.sampler, the one "
                                               r"sampler state of all the process's workers"):
        ckpt.load(tmp_path / "strategy-step3.pt", ckpt.ProcessState)
    model = ckpt.ModelFile({"w": torch.ones(2)}, {}, 4, 1, 3)  # the model file's layout is unchanged since 2
    ckpt.save_file(tmp_path / "epoch-1.pt", {"schema": 2, "kind": "ModelFile",
                                             **{k: getattr(model, k) for k in ("model", "model_config", "num_outputs",
                                                                               "epoch", "step", "meta")}})
    assert torch.equal(ckpt.load(tmp_path / "epoch-1.pt", ckpt.ModelFile).model["w"], torch.ones(2))
    ckpt.save_file(tmp_path / "epoch-2.pt", {**ckpt.load_file(tmp_path / "epoch-1.pt"), "schema": ckpt.SCHEMA + 1})
    with pytest.raises(ckpt.SchemaError, match=r"\(schema 4, kind 'ModelFile'\): it was written by another"):
        ckpt.load(tmp_path / "epoch-2.pt", ckpt.ModelFile)


def test_settings_difference_is_one_line_naming_the_setting():
    other = ckpt.RunSettings({"kind": "tdnn", "dim": 8}, {"name": "none"}, 1, 10)
    assert SETTINGS.difference(SETTINGS) is None
    assert SETTINGS.difference(other) == "model.dim is None in the run, 8 in this command"
    assert "use the same number" in SETTINGS.difference(ckpt.RunSettings({"kind": "tdnn"}, {"name": "none"}, 2, 10))


def _save(exp, step, mid, keep_last=3):
    state = ckpt.ProcessState(1, step, mid, SETTINGS, {"step": step}, {}, {}, {})
    ckpt.save_set(exp, SimCommunicator(1), SIM, state, ckpt.ModelFile({}, {}, 10, 1, step), keep_last)


def test_damaged_pointer_or_missing_file_falls_back_to_the_newest_complete_set(tmp_path):
    for step in (2, 4, 6):
        _save(tmp_path, step, mid=True)
    comm = SimCommunicator(1)
    point = ckpt.find_resume_point(tmp_path, comm, SIM)
    assert (point.state.step, point.fallback) == (6, False)
    (tmp_path / "strategy-step6.pt").unlink()  # a file the pointer names is missing
    point = ckpt.find_resume_point(tmp_path, comm, SIM)
    assert (point.state.step, point.fallback, point.pointer.files[0]) == (4, True, "checkpoint-4.pt")
    (tmp_path / ckpt.LATEST).write_text("{ truncated")
    (tmp_path / "strategy-step4.pt").write_bytes(b"not a checkpoint")  # unreadable: skipped
    assert ckpt.find_resume_point(tmp_path, comm, SIM).state.step == 2
    (tmp_path / "strategy-step2.pt").unlink()
    with pytest.raises(UserError, match="none is complete on every process"):  # never a fresh start over them
        ckpt.find_resume_point(tmp_path, comm, SIM)
    assert ckpt.find_resume_point(tmp_path / "new", comm, SIM) is None


def test_an_epoch_end_set_follows_the_mid_epoch_set_of_its_step(tmp_path):
    _save(tmp_path, 4, mid=True)
    _save(tmp_path, 4, mid=False)
    pointer = json.loads((tmp_path / ckpt.LATEST).read_text())
    assert pointer["files"] == ["epoch-1.pt", "strategy-1.pt"]
    (tmp_path / ckpt.LATEST).unlink()
    (tmp_path / "epoch-1.pt").touch()  # still there, so checkpoints exist; but the pointer is gone
    point = ckpt.find_resume_point(tmp_path, SimCommunicator(1), SIM)
    assert (point.state.step, point.state.mid_epoch) == (4, False)
