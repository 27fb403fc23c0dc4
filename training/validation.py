"""Sample edits on a fixed validation set while training, written as side-by-side videos.

Numbers say whether the loss falls; only looking at edits says whether the model edits. Every `every` steps the
first `count` records of a pairs manifest are edited with the model being trained (same seed each time, so sample
sets are comparable across steps) and written to `samples/step-NNNNNN/<id>.mp4` as source | edit | target.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from editor.pipeline import VideoEditPipeline
from editor.video import VideoError, write_video
from training.curation.manifest import read_clip, read_manifest

logger = logging.getLogger(__name__)

SAMPLES_DIR = "samples"


@dataclass
class ValidationConfig:
    manifest: Path | None = None  # pairs whose sources are edited; None turns sampling off
    count: int = 4  # the first `count` records
    every: int = 500  # optimizer steps between sample sets (and one set at the end)
    steps: int = 20  # sampling steps
    guidance_scale: float = 1.0  # >1 uses classifier-free guidance, as editing usually does
    seed: int = 0

    @property
    def enabled(self) -> bool:
        return self.manifest is not None

    def check(self) -> None:
        for name in ("count", "every", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"validation.{name}={value!r} must be a positive integer")
        if not isinstance(self.guidance_scale, int | float) or self.guidance_scale < 1:
            raise ValueError(f"validation.guidance_scale={self.guidance_scale!r} must be >= 1")
        if self.manifest is not None and not Path(self.manifest).is_file():
            raise FileNotFoundError(f"validation.manifest={str(self.manifest)!r} is not a file")


@dataclass
class ValidationSample:
    id: str
    instruction: str
    source: np.ndarray  # F, H, W, 3 uint8
    target: np.ndarray | None


def _read(reference: dict, settings: dict) -> np.ndarray:
    return read_clip(
        reference, fps=settings["fps"], frames=settings["frames"], height=settings["height"], width=settings["width"]
    )


def load_validation_set(config: ValidationConfig, settings: dict) -> list[ValidationSample]:
    """The first `count` usable records, read at the cache's geometry (`frames`, `fps`, `height`, `width`)."""
    samples = []
    for record in read_manifest(config.manifest):
        try:
            source = _read(record["source"], settings)
            target = _read(record["target"], settings) if record.get("target") else None
        except VideoError as error:
            logger.warning("validation sample %s skipped: %s", record["id"], error)
            continue
        samples.append(ValidationSample(record["id"], record["instruction"], source, target))
        if len(samples) == config.count:
            break
    if not samples:
        raise ValueError(f"validation.manifest={str(config.manifest)!r} has no readable record")
    return samples


@torch.no_grad()
def write_samples(
    pipe: VideoEditPipeline, samples: list[ValidationSample], config: ValidationConfig, folder: Path, fps: float
) -> list[Path]:
    """Edit each sample with `pipe` (its transformer being the model in training) and write the comparisons."""
    written = []
    for sample in samples:
        frames, height, width = sample.source.shape[:3]
        result = pipe(
            video=sample.source,
            prompt=sample.instruction,
            height=height,
            width=width,
            num_frames=frames,
            fps=fps,
            num_inference_steps=config.steps,
            guidance_scale=float(config.guidance_scale),
            generator=torch.Generator().manual_seed(config.seed),
        )
        panels = [sample.source, result.frames[0]] + ([sample.target] if sample.target is not None else [])
        written.append(write_video(folder / f"{sample.id}.mp4", np.concatenate(panels, axis=2), fps))
    logger.info("wrote %d validation edits to %s", len(written), folder)
    return written
