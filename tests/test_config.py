"""The typed config loader: YAML + overrides into frozen dataclasses, errors before any work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from asr_trainer.config import load_config
from asr_trainer.errors import UserError


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-3
    kind: Literal["sgd", "adam"] = "adam"


@dataclass(frozen=True)
class Train:
    epochs: int = 3
    shuffle: bool = True
    tag: Optional[str] = None
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    optim: Optim = Optim()

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")


def write(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_yaml_then_overrides(tmp_path):
    cfg = load_config(Train, write(tmp_path, "epochs: 5\noptim:\n  lr: 2\n"), ["optim.kind=sgd", "sizes=[3]"])
    assert cfg == Train(epochs=5, sizes=[3], optim=Optim(lr=2.0, kind="sgd"))
    assert isinstance(cfg.optim.lr, float)


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        ("epoch: 5\n", [], "unknown setting.*epoch"),
        ("optim:\n  learning_rate: 1\n", [], "unknown setting.*optim.learning_rate"),
        ("epochs: five\n", [], "epochs must be of type int"),
        ("shuffle: 1\n", [], "shuffle must be true or false"),
        ("", ["optim.kind=rmsprop"], "optim.kind must be one of"),
        ("", ["epochs=0"], "epochs must be >= 1"),
        ("- a\n- b\n", [], "must be a mapping"),
        ("", ["epochs"], "key=value"),
    ],
)
def test_bad_configs_name_the_setting(tmp_path, text, overrides, message):
    with pytest.raises(UserError, match=message):
        load_config(Train, write(tmp_path, text), overrides)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(Train, tmp_path / "nope.yaml")
