"""A training run's log: one JSON line per logged step, the same scalars in TensorBoard, and a loss-curve plot.

`log.jsonl` is the record of truth (the plot and the tests read it); TensorBoard is for watching a run live
(`tensorboard --logdir runs/`). On resume both forget the steps after the checkpoint, which are about to be trained
again, so a resumed run's log reads as if it had never stopped.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LOG_NAME = "log.jsonl"
TENSORBOARD_DIR = "tensorboard"
LOSS_PLOT_NAME = "loss.png"


def read_log(output: Path) -> list[dict[str, Any]]:
    path = Path(output) / LOG_NAME
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class RunLog:
    """Append-only step records, written by the main process only."""

    def __init__(self, output: Path, *, resume_step: int = 0, tensorboard: bool = True) -> None:
        self.output = Path(output)
        kept = [r for r in read_log(self.output) if r["step"] <= resume_step]
        self.path = self.output / LOG_NAME
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.file = self.path.open("a")
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a killed run wrote past the checkpoint being resumed.
            self.writer = SummaryWriter(str(self.output / TENSORBOARD_DIR), purge_step=resume_step + 1)

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float) and math.isfinite(value):
                    self.writer.add_scalar(f"train/{key}", value, record["step"])
            self.writer.flush()

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.close()


def plot_loss_curve(output: Path) -> Path | None:
    """`loss.png`: the logged loss per step and a smoothed trend (log scale); None when nothing was logged."""
    records = read_log(output)
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on training machines
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    losses = [r["loss"] for r in records]
    smooth, trend = losses[0], []
    for value in losses:
        smooth = 0.9 * smooth + 0.1 * value
        trend.append(smooth)
    figure, axis = plt.subplots(figsize=(7, 4), dpi=100)
    axis.plot(steps, losses, color="#9bb7d4", linewidth=1, label="loss")
    axis.plot(steps, trend, color="#1f4e79", linewidth=2, label="moving average")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("flow-matching loss")
    if min(losses) > 0:
        axis.set_yscale("log")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    path = Path(output) / LOSS_PLOT_NAME
    figure.savefig(path)
    plt.close(figure)
    return path
