"""Ready-made editing pairs of the world, with ground truth: a stand-in public data set, and held-out benchmarks.

Stage 2 mines local edits (add, remove, replace, recolour) from clips by segmenting and inpainting; global edits
(background, style) come, as in the paper, from public editing data sets merged in (`external_manifest`). In the
world such a data set is written here: counterfactual re-renders of one random scene, each with its source, target
and mask clips and a randomly phrased instruction.

The same writer makes evaluation benchmarks: a seed no training set used, and `exclude` naming the manifests whose
instructions must not reappear, so that both the scenes and the exact phrasings are new to the model. Every pair's
clips are written lossless (they are ground truth) and each record follows the pairs-manifest schema, `provenance`
holding the world seed. Writing is resumable: pairs already on disk are kept.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .edits import EDIT_TYPES, instruction_for, random_edit, render_pair
from .scene import random_scene

logger = logging.getLogger(__name__)

MAX_TRIES_PER_PAIR = 50


def _instructions_in(manifests: Iterable[Path]) -> set[str]:
    seen: set[str] = set()
    for manifest in manifests:
        with Path(manifest).open() as f:
            seen.update(json.loads(line)["instruction"].strip().lower() for line in f if line.strip())
    return seen


def write_edit_pairs(
    output: str | Path,
    count: int,
    *,
    seed: int,
    types: tuple[str, ...] = EDIT_TYPES,
    frames: int = 9,
    fps: float = 8.0,
    size: int = 64,
    exclude: Iterable[Path] = (),
    prefix: str = "pair",
    phrasing: str = "all",
    lossless: bool = True,
    canonical: bool = False,
) -> Path:
    """Write `count` pairs, as evenly spread over `types` as possible, to `output/manifest.jsonl`; return its path.

    `phrasing` picks the instruction templates: "train" for training data, "heldout" for a benchmark (templates no
    "train" instruction uses), "all". Instructions found in any `exclude` manifest (compared case-insensitively)
    are rephrased as well; the number of rephrasings is logged. `lossless=False` writes browser-playable H.264
    instead of exact pixels (for example clips, not for ground truth). `canonical` fixes what the instruction
    leaves open (see :func:`~training.world.edits.random_edit`).
    """
    from editor.video import write_video
    from training.curation.manifest import clip, write_jsonl

    unknown = set(types) - set(EDIT_TYPES)
    if unknown or not types:
        raise ValueError(f"types={list(types)!r} must be a non-empty subset of {EDIT_TYPES}")
    if count < 1:
        raise ValueError(f"count={count!r} must be positive")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    taken = _instructions_in(exclude)
    seconds = frames / fps
    records, rephrased = [], Counter()
    for index in range(count):
        edit_type = types[index % len(types)]
        rng = np.random.default_rng((seed, index))
        for _ in range(MAX_TRIES_PER_PAIR):
            scene = random_scene(rng, num_frames=frames)
            try:
                edit = random_edit(scene, rng, types=(edit_type,), num_frames=frames, canonical=canonical)
            except ValueError:
                continue
            instruction = instruction_for(edit, scene, rng, num_frames=frames, phrasing=phrasing)
            while instruction.strip().lower() in taken and rephrased[edit_type] < 100 * count:
                rephrased[edit_type] += 1
                instruction = instruction_for(edit, scene, rng, num_frames=frames, phrasing=phrasing)
            if instruction.strip().lower() not in taken:
                break
        else:
            raise RuntimeError(f"no {edit_type} edit with a new phrasing found for pair {index} of seed {seed}")
        pair_id = f"{prefix}{index:05d}-{edit_type}"
        folder = output / "videos" / pair_id
        paths = {name: folder / f"{name}.mp4" for name in ("source", "target", "mask")}
        if not all(p.is_file() for p in paths.values()):
            source, target, mask = render_pair(scene, edit, frames, size, size)
            mask_rgb = np.repeat(mask[..., None].astype(np.uint8) * 255, 3, axis=-1)  # F, H, W, 3
            for name, video in (("source", source), ("target", target), ("mask", mask_rgb)):
                write_video(paths[name], video, fps, lossless=lossless)
        records.append({
            "id": pair_id, "source": clip(paths["source"], 0.0, seconds),
            "target": clip(paths["target"], 0.0, seconds), "mask": clip(paths["mask"], 0.0, seconds),
            "instruction": instruction, "edit_type": edit_type,
            "scores": {}, "provenance": {"world_seed": [seed, index], "generator": "training.world.pairs"},
            "stages": {"world_pairs": "1"},
        })  # fmt: skip
    manifest = write_jsonl(output / "manifest.jsonl", records)
    logger.info(
        "%d world pairs in %s (%s); %d instructions rephrased to avoid excluded ones", len(records), manifest,
        dict(Counter(r["edit_type"] for r in records)), sum(rephrased.values()),
    )  # fmt: skip
    return manifest
