"""flat_vectors.all_finite: the one-pass finiteness check of GTC's contributions."""
import pytest
import torch

from asr_trainer.sync import flat_vectors as flat


@pytest.mark.parametrize("size", [1, 7, 64, 1_000_003])  # scalar tail, one vector register, many
@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_all_finite_finds_any_nan_or_infinity(size, where, bad):
    vec = torch.randn(size, generator=torch.Generator().manual_seed(size))
    assert flat.all_finite(vec)
    vec[{"first": 0, "middle": size // 2, "last": size - 1}[where]] = bad
    assert not flat.all_finite(vec)
    assert flat.all_finite(torch.zeros(0))
    assert flat.all_finite(torch.full((5,), 3.0e38))  # large but finite
