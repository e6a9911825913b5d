"""TensorBoard scalars under ``<exp_dir>/tensorboard``."""

from __future__ import annotations

from pathlib import Path


class Metrics:
    """Thin wrapper over ``SummaryWriter``; a no-op when ``enabled`` is False (non-zero ranks)."""

    def __init__(self, exp_dir: Path, enabled: bool = True) -> None:
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(exp_dir) / "tensorboard"))

    def scalars(self, step: int, values: dict[str, float], prefix: str = "train") -> None:
        """Log ``{name: value}`` as ``<prefix>/<name>`` at ``step``."""
        if self.writer is None:
            return
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
