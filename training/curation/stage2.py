"""Stage 2: clips -> synthetic editing pairs (SFT), in the order of the paper's figure.

source -> elements filter -> object segmentation -> mask filter -> caption generation -> masked video inpainting
-> instruction generation -> instruction filter -> quality filter -> (all records) merge of external pairs ->
edit-type re-balancing.

Sources are either clips of a stage-1 manifest (real video) or clips of the procedural world. An object found by the
segmenter is masked; the caption says what the masked region should show instead (another colour, another object,
or the background behind it for a removal); the inpainter re-renders the region; the describer writes the
instruction from the pair, as a VLM would, and judges the result. A removal read backwards is an addition, so each
kept removal also yields the matching "add" pair.
"""

from __future__ import annotations

import functools
import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from editor.video import read_video, write_video

from .backends.base import JUDGE_CRITERIA, BackendConfig
from .instructions import InstructionFilter, instruction_filter
from .manifest import clip, read_manifest
from .pipeline import ContextCache, Drop, GlobalStage, Stage, StageContext, record_rng, stable_seed

logger = logging.getLogger(__name__)

LOCAL_EDITS = ("remove", "recolour", "replace")


@dataclass(frozen=True)
class Stage2Config:
    """Everything stage 2 is run with (see configs/curation/stage2.yaml)."""

    output: Path = Path("data/stage2")
    workers: int = 1
    seed: int = 0
    # sources: a stage-1 manifest's source clips, or `count` clips of the procedural world
    source_manifest: Path | None = None
    count: int = 100
    clip_frames: int = 9
    clip_fps: float = 8.0
    height: int = 64
    width: int = 64
    # backends
    describer: BackendConfig = field(default_factory=BackendConfig)
    segmenter: BackendConfig = field(default_factory=BackendConfig)
    inpainter: BackendConfig = field(default_factory=BackendConfig)
    # filters
    min_objects: int = 1
    min_mask_area: float = 0.005  # fraction of the frame
    max_mask_area: float = 0.4
    min_mask_presence: float = 0.8  # fraction of frames the object is visible in
    min_mask_iou: float = 0.3  # between consecutive frames: a mask that jumps is a bad track
    instructions: InstructionFilter = field(default_factory=InstructionFilter)
    min_judge_total: int = 6
    min_judge_each: int = 1
    add_from_removals: bool = True
    # "replace it with a triangle" says nothing of the triangle's turn: asking the inpainter for an upright one makes
    # the target follow from the instruction, which a small model learns far more easily than a spread of turns
    upright_replacements: bool = False
    # One wording per edit type teaches a model that wording rather than the edit: asked another way, it copies the
    # source. True lets the describer word each pair its own way (seeded per pair), as a sampling VLM would.
    vary_instructions: bool = True
    # global
    external_manifest: Path | None = None  # pairs from elsewhere (public data sets) to mix in
    edit_type_proportions: dict[str, float] = field(default_factory=dict)  # e.g. {remove: 0.2, add: 0.2, ...}


class Stage2Context(StageContext):
    def __init__(self, config: Stage2Config) -> None:
        super().__init__()
        from .backends import build_describer, build_inpainter, build_segmenter

        self.config = config
        self.describer = build_describer(config.describer)
        self.segmenter = build_segmenter(config.segmenter)
        self.inpainter = build_inpainter(config.inpainter)
        # The last source segmented: (key, objects); the elements filter and the segmentation stage share it.
        self.segmented: tuple[tuple | None, list] = (None, [])


_contexts = ContextCache(Stage2Context)


def make_context(config: Stage2Config) -> Stage2Context:
    """The context for `config`, built once per worker process (a function, so workers find their own cache)."""
    return _contexts(config)


def find_units(config: Stage2Config) -> list[dict]:
    """The source clips: from a stage-1 manifest (its source clips, each once) or seeds of the procedural world."""
    if config.source_manifest is not None:
        seen: dict[tuple, dict] = {}
        for record in read_manifest(config.source_manifest):
            # A captioned clip (text-to-video data) has no source: the clip itself is one.
            reference = record["source"] or record["target"]
            key = (reference["path"], reference["start"])
            seen.setdefault(key, {"id": record["id"].split("#")[0] + f"@{key[1]:.3f}", "source": reference})
        return list(seen.values())
    return [
        {"id": f"world{i:06d}", "world_seed": stable_seed(config.seed, "world", i) % 2**31}
        for i in range(config.count)
    ]


def _video_dir(ctx: Stage2Context, record: dict) -> Path:
    return ctx.config.output / "videos" / record["id"].replace("/", "_").replace("#", "_")


def _load(reference: dict, ctx: Stage2Context) -> np.ndarray:
    c = ctx.config
    return _read_clip(reference["path"], reference["start"], reference["end"], c.clip_fps, c.clip_frames)


@functools.lru_cache(maxsize=8)
def _read_clip(path: str, start: float, end: float, fps: float, count: int) -> np.ndarray:
    # Most stages of a unit read its source, target and mask again: decode each once per worker. Every file is
    # written once, before it is first read, so a cached clip never goes stale.
    frames = read_video(path, fps=fps, start=start, end=end, max_frames=count).frames
    frames.flags.writeable = False
    return frames


def _objects(record: dict, ctx: Stage2Context) -> list:
    """The segmenter's objects in the source, in a fixed order whatever order the backend reports them in (so the
    seeded choice of one is reproducible); computed once for the elements filter and the segmentation stage."""
    key = (record["source"]["path"], record["source"]["start"])
    if ctx.segmented[0] != key:
        objects = ctx.segmenter.segment(_load(record["source"], ctx))
        ctx.segmented = (key, sorted(objects, key=lambda o: (o.label, -o.score)))
    return ctx.segmented[1]


def _write(path: Path, frames: np.ndarray, ctx: Stage2Context) -> dict:
    # Lossless: training pairs carry no compression artefacts, and every rerun reads back the very same pixels.
    write_video(path, frames, ctx.config.clip_fps, lossless=True)
    return clip(path, 0.0, len(frames) / ctx.config.clip_fps)


# Stages -----------------------------------------------------------------------------------------------------------


def source(record: dict, ctx: Stage2Context) -> list[dict]:
    """Bring the source clip to the model's frame count and size, written as a file the manifest can point at."""
    from editor.video import conform_clip

    c = ctx.config
    if "world_seed" in record:
        from .backends.world import render_world_clip

        frames = render_world_clip(record["world_seed"], c.clip_frames, c.height, c.width)
    else:
        frames = _load(record["source"], ctx)
        if len(frames) < c.clip_frames:
            raise Drop("source clip too short")
        frames = conform_clip(frames, num_frames=c.clip_frames, height=c.height, width=c.width)
    folder = _video_dir(ctx, record)
    reference = _write(folder / "source.mp4", frames, ctx)
    provenance = {"unit": record["id"], **({"world_seed": record["world_seed"]} if "world_seed" in record else {})}
    return [{**record, "source": reference, "provenance": provenance}]


def elements_filter(record: dict, ctx: Stage2Context) -> list[dict]:
    objects = _objects(record, ctx)
    if len(objects) < ctx.config.min_objects:
        raise Drop("no salient objects")
    return [{**record, "objects": [o.label for o in objects]}]


def object_segmentation(record: dict, ctx: Stage2Context) -> list[dict]:
    objects = _objects(record, ctx)
    if not objects:
        raise Drop("no objects segmented")
    rng = record_rng(ctx.config.seed, record, "object_segmentation")
    index = rng.randrange(len(objects))
    chosen = objects[index]
    mask_frames = np.repeat(chosen.mask[..., None].astype(np.uint8) * 255, 3, axis=-1)
    mask = _write(_video_dir(ctx, record) / "mask.mp4", mask_frames, ctx)
    return [{**record, "object": chosen.label, "object_index": index, "mask": mask,
             "scores": {"segment_score": round(float(chosen.score), 4)}}]  # fmt: skip


def _load_mask(record: dict, ctx: Stage2Context) -> np.ndarray:
    return _load(record["mask"], ctx)[..., 0] > 127


def mask_filter(record: dict, ctx: Stage2Context) -> list[dict]:
    c = ctx.config
    mask = _load_mask(record, ctx)
    area = mask.mean(axis=(1, 2))
    if not mask.any():
        raise Drop("mask empty")
    present = area > 0
    if present.mean() < c.min_mask_presence:
        raise Drop("object not visible long enough")
    if area[present].mean() < c.min_mask_area:
        raise Drop("mask too small")
    if area[present].mean() > c.max_mask_area:
        raise Drop("mask too large")
    ious = [(a & b).sum() / max(1, (a | b).sum()) for a, b in itertools.pairwise(mask)] or [1.0]
    if min(ious) < c.min_mask_iou:
        raise Drop("mask unstable")
    scores = {**record["scores"], "mask_area": round(float(area.mean()), 4), "mask_iou": round(float(min(ious)), 4)}
    return [{**record, "scores": scores}]


def caption_generation(record: dict, ctx: Stage2Context) -> list[dict]:
    """Decide the edit and write what the masked region should show: the inpainter's prompt."""
    rng = record_rng(ctx.config.seed, record, "caption_generation")
    edit_type = rng.choice(LOCAL_EDITS)
    seed = rng.randrange(2**31)
    caption = ctx.describer.propose_edit(_load(record["source"], ctx), record["object"], edit_type, seed)
    if not caption:
        raise Drop("no caption for this edit")
    if edit_type == "replace" and ctx.config.upright_replacements:
        caption = "an upright " + caption.removeprefix("a ").removeprefix("an ")
    return [{**record, "edit_type": edit_type, "caption": caption}]


def inpainting(record: dict, ctx: Stage2Context) -> list[dict]:
    frames, mask = _load(record["source"], ctx), _load_mask(record, ctx)
    seed = record_rng(ctx.config.seed, record, "inpainting").randrange(2**31)
    hints = {k: record[k] for k in ("world_seed", "object_index") if k in record}
    edited = ctx.inpainter.inpaint(frames, mask, record["caption"], seed, **hints)
    if edited.shape != frames.shape:
        raise Drop("inpainter returned another shape")
    target = _write(_video_dir(ctx, record) / "target.mp4", edited, ctx)
    return [{**record, "target": target}]


def _wording_seed(record: dict, ctx: Stage2Context, purpose: str) -> int | None:
    if not ctx.config.vary_instructions:
        return None
    return record_rng(ctx.config.seed, record, purpose).randrange(2**31)


def instruction_generation(record: dict, ctx: Stage2Context) -> list[dict]:
    seed = _wording_seed(record, ctx, "instruction_generation")
    change = ctx.describer.describe_change(_load(record["source"], ctx), _load(record["target"], ctx), seed)
    if change is None:
        raise Drop("no visible change")
    return [{**record, "instruction": change.instruction, "edit_type": change.edit_type}]


def quality_filter(record: dict, ctx: Stage2Context) -> list[dict]:
    c = ctx.config
    scores = ctx.describer.judge(_load(record["source"], ctx), _load(record["target"], ctx), record["instruction"])
    total = sum(scores[k] for k in JUDGE_CRITERIA)
    if total < c.min_judge_total or min(scores.values()) < c.min_judge_each:
        raise Drop("judged low quality")
    record = _as_pair({**record, "scores": {**record["scores"], **scores, "judge_total": total}}, ctx)
    pairs = [record]
    if c.add_from_removals and record["edit_type"] == "remove":
        seed = _wording_seed(record, ctx, "add_from_removal")
        change = ctx.describer.describe_change(_load(record["target"], ctx), _load(record["source"], ctx), seed)
        if change is not None and change.edit_type == "add":
            added = {"source": record["target"], "target": record["source"], "instruction": change.instruction}
            pairs.append({**record, **added, "id": record["id"] + "#add", "edit_type": "add"})
    return pairs


def _as_pair(record: dict, ctx: Stage2Context) -> dict:
    backends = {k: getattr(ctx.config, k).kind for k in ("describer", "segmenter", "inpainter")}
    provenance = {
        **record["provenance"],
        "object": record["object"],
        "caption": record["caption"],
        "backends": backends,
    }
    return {"id": record["id"] + "#e0", "source": record["source"], "target": record["target"],
            "instruction": record["instruction"], "edit_type": record["edit_type"], "mask": record["mask"],
            "scores": record["scores"], "provenance": provenance, "stages": record.get("stages", {})}  # fmt: skip


def merge_external(records: list[dict], ctx: Stage2Context):
    """Mix in pairs from an external manifest (public data sets, say), validated like our own."""
    path = ctx.config.external_manifest
    if path is None:
        return records, []
    external = [{**r, "provenance": {**r["provenance"], "external": str(path)}} for r in read_manifest(path)]
    ctx.note("merge_external", pairs=len(external))
    return records + external, []


def rebalance(records: list[dict], ctx: Stage2Context):
    """Down-sample over-represented edit types to the configured proportions (never up-sample: no copies)."""
    proportions = ctx.config.edit_type_proportions
    if not proportions:
        return records, []
    by_type: dict[str, list[dict]] = {}
    for record in records:
        by_type.setdefault(record["edit_type"], []).append(record)
    total_weight = sum(proportions.values())
    # The largest total that every type can fill at its proportion, bounded by the scarcest type.
    scale = min(len(by_type.get(t, [])) / (w / total_weight) for t, w in proportions.items() if w > 0)
    keep_ids: set[str] = set()
    for edit_type, items in by_type.items():
        weight = proportions.get(edit_type, 0.0)
        quota = round(scale * weight / total_weight)
        rng = record_rng(ctx.config.seed, {"id": edit_type}, "rebalance")
        keep_ids.update(r["id"] for r in rng.sample(items, k=min(quota, len(items))))
    kept = [r for r in records if r["id"] in keep_ids]
    dropped = [(r, "re-balanced away") for r in records if r["id"] not in keep_ids]
    return kept, dropped


STAGES = (
    Stage("source", "1", source),
    Stage("elements_filter", "1", elements_filter),
    Stage("object_segmentation", "1", object_segmentation),
    Stage("mask_filter", "1", mask_filter),
    Stage("caption_generation", "1", caption_generation),
    Stage("inpainting", "1", inpainting),
    Stage("instruction_generation", "1", instruction_generation),
    Stage("instruction_filter", "1", instruction_filter),
    Stage("quality_filter", "1", quality_filter),
)
GLOBAL_STAGES = (GlobalStage("merge_external", "1", merge_external), GlobalStage("rebalance", "1", rebalance))
