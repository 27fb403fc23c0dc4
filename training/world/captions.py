"""Captioned clips of the world: the text-to-video data a base model learns to draw from.

ICVE starts from a pretrained text-to-video model (HunyuanVideo), which already knows how to draw what an
instruction names; a model trained from scratch on editing pairs alone has to learn drawing from the few percent of
tokens an edit changes. In the world, the base model's data is random scenes captioned by the frame-only describer,
as a VLM would caption footage ("a red circle and a blue star over a striped background").

Each record follows the pairs-manifest schema without a source: `target` is the clip and `instruction` its caption,
which `training.cache` turns into a text-to-video sample. Writing is resumable: clips already on disk are kept.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .describer import caption
from .render import render
from .scene import random_scene

logger = logging.getLogger(__name__)

EDIT_TYPE = "text_to_video"


def write_captioned_clips(
    output: str | Path, count: int, *, seed: int, frames: int = 9, fps: float = 8.0, size: int = 64,
    prefix: str = "clip", style_prob: float = 0.2,
) -> Path:  # fmt: skip
    """Write `count` captioned clips to `output/videos/` and their records to `output/manifest.jsonl`.

    style_prob: the share of scenes filmed in a style (sketch, ...), which the caption then names.
    """
    from editor.video import read_video, write_video
    from training.curation.manifest import clip, write_jsonl

    if count < 1:
        raise ValueError(f"count={count!r} must be positive")
    output = Path(output)
    (output / "videos").mkdir(parents=True, exist_ok=True)
    seconds = frames / fps
    records = []
    for index in range(count):
        clip_id = f"{prefix}{index:05d}"
        path = output / "videos" / f"{clip_id}.mp4"
        if path.is_file():
            video = read_video(path).frames
        else:
            scene = random_scene(np.random.default_rng((seed, index)), num_frames=frames, style_prob=style_prob)
            video = render(scene, frames, size, size)
            write_video(path, video, fps, lossless=True)
        records.append({
            "id": clip_id, "source": None, "target": clip(path, 0.0, seconds), "instruction": caption(video),
            "edit_type": EDIT_TYPE, "mask": None, "scores": {},
            "provenance": {"world_seed": [seed, index], "generator": "training.world.captions"},
            "stages": {"world_captions": "1"},
        })  # fmt: skip
    manifest = write_jsonl(output / "manifest.jsonl", records)
    logger.info("%d captioned world clips in %s", len(records), manifest)
    return manifest
