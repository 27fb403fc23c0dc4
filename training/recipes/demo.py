"""The demo model, end to end: `python -m training.recipes.demo [--config configs/recipes/demo.yaml] [name=value ...]`.

One command runs what a lab would run on real video, on the procedural world, with the project's own code:

1. `raw`: multi-shot raw videos (`training.world`);
2. `stage1`: stage-1 curation, pairs of unpaired clips (`training.curate`);
3. `global_pairs`: background and style edits, the stand-in for the public data sets stage 2 merges in;
4. `stage2`: stage-2 curation, local edits by segmentation and inpainting, plus the global pairs;
5. `benchmark`: held-out edits of every type (a seed no training set uses, phrasings no training pair has);
6. `captions`: captioned world clips, when `base_clips` asks for a text-to-video base (`training.world.captions`);
7. `init`: the codec's scale from the training clips, and the untrained model (`demo_model.py`);
8. `cache_captions`, `cache_stage1`, `cache_stage2`: latents and text embeddings (`training.cache`);
9. `base`: the text-to-video base on the captioned clips, ICVE's pretrained starting point, when asked for;
   `pretrain` (stage 1, from the base or from scratch) then `finetune` (stage 2, from the pretrained pipeline)
   (`training.train`);
10. `evaluate`: the fine-tuned model and the identity baseline on the benchmark (`training.evaluate`);
11. `timing`: the median wall time of editing a two-second clip;
12. `ship`: the pipeline folder copied to `ship_to` with the evaluation (its page, `benchmark.md`) and timing beside
    it, its transformer's weights rounded to the precision the benchmark ran in (bf16 halves the download and is what
    the app computes in on most CPUs and every GPU).

Every step is resumable and the finished ones are recorded in `root/done/`, so a killed run continues where it
stopped when the command is repeated. `--until STEP` stops after a step; `--only STEP` runs one (its inputs must
exist). Exit codes: 0 done, 2 bad arguments or config, 1 a failed step.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from editor.presets import BENCHMARK_PAGE
from training.atomic import atomic_write, atomic_write_dir
from training.config import from_dict, load_config, parse_yaml, to_dict

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ModelSettings:
    transformer: dict[str, Any] = field(default_factory=dict)  # overrides of demo_model.TRANSFORMER
    flow_shift: float = 2.0
    steps: int = 20  # sampling defaults shipped with the model
    guidance_scale: float = 2.0
    frames: int = 9
    fps: float = 8.0
    size: int = 64
    projection_dim: int | None = 128  # principal components per token; None keeps every packed pixel
    whitening: float = 0.0  # 0 to 1: how far the components are scaled to equal variance (PixelPackCodec)
    statistics_clips: int = 200  # editing pairs whose source and target clips the codec is fitted on


@dataclass
class DemoRecipe:
    root: Path = Path("data/demo")  # everything the recipe writes except the shipped model
    ship_to: Path | None = Path("assets/demo-model")
    seed: int = 0
    workers: int = 2
    raw_videos: int = 400
    raw_seconds: float = 60.0
    stage1: dict[str, Any] = field(default_factory=dict)  # overrides of configs/curation/stage1.yaml
    stage2: dict[str, Any] = field(default_factory=dict)  # overrides of configs/curation/stage2.yaml
    global_pairs: int = 1000
    # Off here as in the runs made before these settings existed, whose step records lack them (configs/recipes/
    # demo.yaml turns both on).
    canonical_edits: bool = False  # training edits fix what instructions leave open (upright replacements, ...)
    vary_instructions: bool = False  # stage 2's describer words each pair its own way, not one wording per type
    benchmark_per_type: int = 30
    benchmark_seed: int = 90_001
    # ICVE starts from a pretrained text-to-video model; the demo's stand-in is trained on this many captioned world
    # clips (0: stage 1 starts from scratch)
    base_clips: int = 0
    model: ModelSettings = field(default_factory=ModelSettings)
    base: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields; paths are the recipe's
    pretrain: dict[str, Any] = field(default_factory=dict)
    finetune: dict[str, Any] = field(default_factory=dict)
    evaluate: dict[str, Any] = field(default_factory=dict)  # EvalConfig fields


# Steps --------------------------------------------------------------------------------------------------------------


def _paths(recipe: DemoRecipe) -> dict[str, Path]:
    root = Path(recipe.root)
    return {name: root / name for name in (
        "raw", "stage1", "global", "stage2", "benchmark", "captions", "init", "cache-captions", "cache-stage1",
        "cache-stage2", "runs", "eval",
    )}  # fmt: skip


def step_raw(recipe: DemoRecipe) -> None:
    from training.world import write_raw_videos

    size = recipe.model.size
    write_raw_videos(_paths(recipe)["raw"], recipe.raw_videos, recipe.seed, recipe.raw_seconds, 12.0, size,
                     recipe.workers)  # fmt: skip


def _curation_config(recipe: DemoRecipe, stage: str, values: dict[str, Any]):
    from training.curate import config_class

    base = yaml_values(REPO / "configs" / "curation" / f"{stage}.yaml")
    geometry = {"clip_frames": recipe.model.frames, "clip_fps": recipe.model.fps}
    merged = {**base, **geometry, "workers": recipe.workers, "seed": recipe.seed, **values}
    return from_dict(config_class(stage), merged)


def step_stage1(recipe: DemoRecipe) -> None:
    from training.curate import curate

    paths = _paths(recipe)
    values = {"input": str(paths["raw"]), "output": str(paths["stage1"]), **recipe.stage1}
    curate("stage1", _curation_config(recipe, "stage1", values))


def step_global_pairs(recipe: DemoRecipe) -> None:
    from training.world.pairs import write_edit_pairs

    m = recipe.model
    write_edit_pairs(
        _paths(recipe)["global"], recipe.global_pairs, seed=recipe.seed + 1, types=("background", "style"),
        frames=m.frames, fps=m.fps, size=m.size, prefix="global", phrasing="train", canonical=recipe.canonical_edits,
    )  # fmt: skip


def step_stage2(recipe: DemoRecipe) -> None:
    from training.curate import curate

    paths = _paths(recipe)
    m = recipe.model
    values = {
        "output": str(paths["stage2"]), "external_manifest": str(paths["global"] / "manifest.jsonl"),
        "height": m.size, "width": m.size, "upright_replacements": recipe.canonical_edits,
        "vary_instructions": recipe.vary_instructions, **recipe.stage2,
    }  # fmt: skip
    curate("stage2", _curation_config(recipe, "stage2", values))


def step_benchmark(recipe: DemoRecipe) -> None:
    from training.world import EDIT_TYPES
    from training.world.pairs import write_edit_pairs

    paths = _paths(recipe)
    m = recipe.model
    exclude = [paths["stage1"] / "manifest.jsonl", paths["stage2"] / "manifest.jsonl"]
    write_edit_pairs(paths["benchmark"], recipe.benchmark_per_type * len(EDIT_TYPES), seed=recipe.benchmark_seed,
                     frames=m.frames, fps=m.fps, size=m.size, exclude=exclude, prefix="bench",
                     phrasing="heldout")  # fmt: skip


def step_captions(recipe: DemoRecipe) -> None:
    from training.world.captions import write_captioned_clips

    if not recipe.base_clips:
        logger.info("base_clips=0: no text-to-video base")
        return
    m = recipe.model
    write_captioned_clips(_paths(recipe)["captions"], recipe.base_clips, seed=recipe.seed + 2, frames=m.frames,
                          fps=m.fps, size=m.size)  # fmt: skip


def step_init(recipe: DemoRecipe) -> None:
    from editor.presets import EditDefaults
    from training.curation.manifest import read_clip, read_manifest
    from training.recipes.demo_model import build_demo_pipeline, fit_codec

    paths = _paths(recipe)
    m = recipe.model
    records = list(read_manifest(paths["stage2"] / "manifest.jsonl"))[: m.statistics_clips]
    geometry = {"fps": m.fps, "frames": m.frames, "height": m.size, "width": m.size}
    clips = [read_clip(r[side], **geometry) for r in records for side in ("source", "target")]
    codec = fit_codec(clips, m.projection_dim, m.whitening)
    defaults = EditDefaults(num_inference_steps=m.steps, guidance_scale=m.guidance_scale, embedded_guidance_scale=1.0,
                            height=m.size, width=m.size, num_frames=m.frames, fps=m.fps)  # fmt: skip
    torch_seed(recipe.seed)
    pipe = build_demo_pipeline(defaults, m.flow_shift, codec, m.transformer)
    atomic_write_dir(paths["init"], lambda tmp: pipe.save_pretrained(tmp, safe_serialization=True))


def _cache(recipe: DemoRecipe, stage: str) -> None:
    from training.cache import CacheConfig, build_cache

    paths = _paths(recipe)
    m = recipe.model
    build_cache(CacheConfig(
        manifest=paths[stage] / "manifest.jsonl", model=paths["init"], output=paths[f"cache-{stage}"],
        frames=m.frames, fps=m.fps, height=m.size, width=m.size,
    ))  # fmt: skip


def step_cache_captions(recipe: DemoRecipe) -> None:
    if recipe.base_clips:
        _cache(recipe, "captions")


def step_cache_stage1(recipe: DemoRecipe) -> None:
    _cache(recipe, "stage1")


def step_cache_stage2(recipe: DemoRecipe) -> None:
    _cache(recipe, "stage2")


def starting_point(recipe: DemoRecipe) -> Path:
    """Where ICVE's training starts: the text-to-video base when the recipe trains one, else the untrained model."""
    paths = _paths(recipe)
    return paths["runs"] / "base" / "pipeline" if recipe.base_clips else paths["init"]


def train_config(recipe: DemoRecipe, stage: str):
    """The TrainConfig of `stage` ("base", "pretrain" or "finetune"): the recipe's paths with the YAML's settings."""
    from training.train import TrainConfig

    paths = _paths(recipe)
    if stage == "base":
        where = {"cache": paths["cache-captions"], "init": str(paths["init"])}
    elif stage == "pretrain":
        where = {"cache": paths["cache-stage1"], "init": str(starting_point(recipe))}
    else:
        where = {"cache": paths["cache-stage2"], "init": str(paths["runs"] / "pretrain" / "pipeline")}
    values = {**getattr(recipe, stage), **{k: str(v) for k, v in where.items()}}
    values["output"] = str(paths["runs"] / stage)
    values["pipeline"] = str(paths["init"])
    validation = dict(values.get("validation") or {})
    if stage != "base":  # benchmark edits say little of a text-to-video base
        validation.setdefault("manifest", str(paths["benchmark"] / "manifest.jsonl"))
    values["validation"] = validation
    return from_dict(TrainConfig, values)


def step_base(recipe: DemoRecipe) -> None:
    from training.train import train

    if recipe.base_clips:
        train(train_config(recipe, "base"), resume=True)


def step_pretrain(recipe: DemoRecipe) -> None:
    from training.train import train

    train(train_config(recipe, "pretrain"), resume=True)


def step_finetune(recipe: DemoRecipe) -> None:
    from training.train import train

    train(train_config(recipe, "finetune"), resume=True)


def eval_config(recipe: DemoRecipe, model: str, output: Path, baseline: Path | None = None):
    from training.evaluate import EvalConfig

    paths = _paths(recipe)
    m = recipe.model
    values = {
        "benchmark": str(paths["benchmark"] / "manifest.jsonl"), "model": model, "output": str(output),
        "height": m.size, "width": m.size, "frames": m.frames, "fps": m.fps, "judge": {"kind": "world"},
        **recipe.evaluate,
    }  # fmt: skip
    if baseline is not None:
        values["baseline"] = str(baseline)
    return from_dict(EvalConfig, values)


def step_evaluate(recipe: DemoRecipe) -> None:
    from training.evaluate import evaluate

    paths = _paths(recipe)
    identity = paths["eval"] / "identity"
    evaluate(eval_config(recipe, "source", identity))
    evaluate(eval_config(recipe, str(paths["runs"] / "finetune" / "pipeline"), paths["eval"] / "demo", identity))


def step_timing(recipe: DemoRecipe, runs: int = 7) -> None:
    """Wall time of editing a two-second benchmark clip with the model's defaults: median of `runs` after a warm-up.

    Written to `eval/timing.json` with the machine's thread count, so the number can be checked where it was made.
    """
    import platform
    import statistics

    import torch

    from editor.loading import LoadOptions, load_pipeline
    from editor.video import read_video
    from training.curation.manifest import read_manifest

    paths = _paths(recipe)
    options = LoadOptions()  # what the app loads: bf16 where this CPU computes it faster
    pipe = load_pipeline(paths["runs"] / "finetune" / "pipeline", options=options)
    pipe.set_progress_bar_config(disable=True)
    record = next(iter(read_manifest(paths["benchmark"] / "manifest.jsonl")))
    seconds = 2.0
    frames = read_video(record["source"]["path"], fps=pipe.defaults.fps, end=seconds).frames
    pipe(frames, record["instruction"])  # warm-up: kernels and caches
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = pipe(frames, record["instruction"])
        times.append(time.perf_counter() - started)
    timing = {
        "clip_seconds": seconds, "frames_in": len(frames), "frames_edited": int(result.frames.shape[1]),
        "steps": pipe.defaults.num_inference_steps, "guidance_scale": pipe.defaults.guidance_scale,
        "precision": options.resolved_precision(), "median_seconds": statistics.median(times),
        "runs": [round(t, 3) for t in times],
        "threads": torch.get_num_threads(), "device": "cuda" if _cuda() else "cpu", "machine": platform.machine(),
    }  # fmt: skip
    (paths["eval"] / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")
    logger.info("a %.0f-second clip edits in %.2f s (median of %d)", seconds, timing["median_seconds"], runs)


def step_ship(recipe: DemoRecipe) -> None:
    from training.export import round_weights

    if recipe.ship_to is None:
        logger.info("ship_to is null: the model stays in %s", _paths(recipe)["runs"] / "finetune" / "pipeline")
        return
    paths = _paths(recipe)
    source = paths["runs"] / "finetune" / "pipeline"
    results = json.loads((paths["eval"] / "demo" / "results.json").read_text())

    def write(tmp: Path) -> None:
        shutil.copytree(source, tmp)
        # The shipped weights are the ones scored: rounded to the benchmark's precision, not kept in fp32.
        round_weights(tmp / "transformer", results["model"]["precision"])
        timing = json.loads((paths["eval"] / "timing.json").read_text())
        card = {"recipe": to_dict(recipe), "benchmark": results["aggregates"], "timing": timing}
        (tmp / "training.json").write_text(json.dumps(card, indent=1, default=str) + "\n")
        # The benchmark's own page travels with the model: its tables per edit type and the settings it sampled with.
        shutil.copyfile(paths["eval"] / "demo" / "results.md", tmp / BENCHMARK_PAGE)

    atomic_write_dir(Path(recipe.ship_to), write)


STEPS: dict[str, Callable[[DemoRecipe], None]] = {
    "raw": step_raw, "stage1": step_stage1, "global_pairs": step_global_pairs, "stage2": step_stage2,
    "benchmark": step_benchmark, "captions": step_captions, "init": step_init, "cache_captions": step_cache_captions,
    "cache_stage1": step_cache_stage1, "cache_stage2": step_cache_stage2, "base": step_base,
    "pretrain": step_pretrain, "finetune": step_finetune, "evaluate": step_evaluate, "timing": step_timing,
    "ship": step_ship,
}  # fmt: skip

# The recipe settings each step reads. A step's record keeps those of it and every step before it, since a step's
# output depends on its inputs' settings too.
STEP_SETTINGS: dict[str, tuple[str, ...]] = {
    "raw": ("seed", "raw_videos", "raw_seconds", "model.size"), "stage1": ("stage1", "model.frames", "model.fps"),
    "global_pairs": ("global_pairs", "canonical_edits"), "stage2": ("stage2", "vary_instructions"),
    "benchmark": ("benchmark_per_type", "benchmark_seed"), "captions": ("base_clips",),
    "init": ("model",), "cache_captions": (), "cache_stage1": (), "cache_stage2": (), "base": ("base",),
    "pretrain": ("pretrain",), "finetune": ("finetune",), "evaluate": ("evaluate",), "timing": (),
    "ship": ("ship_to",),
}  # fmt: skip


# Plumbing -----------------------------------------------------------------------------------------------------------


def yaml_values(path: Path) -> dict[str, Any]:
    return parse_yaml(path.read_text()) or {}


def torch_seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _done_file(recipe: DemoRecipe, step: str) -> Path:
    return Path(recipe.root) / "done" / f"{step}.json"


def step_settings(recipe: DemoRecipe, name: str) -> dict[str, Any]:
    """The settings `name` and the steps before it read, as JSON data (what its done record keeps)."""
    values = to_dict(recipe)
    names = list(STEPS)[: list(STEPS).index(name) + 1]
    settings = {}
    for key in (key for step in names for key in STEP_SETTINGS[step]):
        value = values
        for part in key.split("."):
            value = value[part]
        settings[key] = value
    return json.loads(json.dumps(settings, default=str))


def _check_done(recipe: DemoRecipe, name: str, done: Path) -> None:
    recorded = json.loads(done.read_text()).get("settings")
    current = step_settings(recipe, name)
    if recorded is None:
        return
    # A setting added after the record was written was, for that run, what its default now says.
    defaults = step_settings(DemoRecipe(), name)
    changed = sorted(k for k in {*recorded, *current} if recorded.get(k, defaults.get(k)) != current.get(k))
    if changed:
        raise ValueError(
            f"step {name!r} was done with other settings ({', '.join(changed)} changed): `--only {name}` redoes it "
            "and the steps after it, or another root starts afresh"
        )


def _mark_done(done: Path, seconds: float, settings: dict[str, Any]) -> None:
    text = json.dumps({"seconds": round(seconds, 1), "finished": time.time(), "settings": settings}) + "\n"
    atomic_write(done, lambda tmp: tmp.write_text(text))


def run(recipe: DemoRecipe, *, until: str | None = None, only: str | None = None) -> dict[str, float]:
    """Run the steps not yet done, in order; returns each run step's wall time in seconds.

    A step done with other settings (its own or an earlier step's) is an error rather than silently reused; `only`
    reruns one step and forgets the steps after it, which depend on it.
    """
    for name in (until, only):
        if name is not None and name not in STEPS:
            raise ValueError(f"unknown step {name!r}; steps: {list(STEPS)}")
    times = {}
    for name, step in STEPS.items():
        if only is not None and name != only:
            continue
        done = _done_file(recipe, name)
        if done.is_file() and only is None:
            _check_done(recipe, name, done)
            logger.info("%s: done (%s)", name, done)
        else:
            logger.info("%s: running", name)
            started = time.perf_counter()
            step(recipe)
            times[name] = time.perf_counter() - started
            _mark_done(done, times[name], step_settings(recipe, name))
            logger.info("%s: finished in %.0f s", name, times[name])
            if only is not None:
                for later in list(STEPS)[list(STEPS).index(name) + 1 :]:
                    _done_file(recipe, later).unlink(missing_ok=True)
        if name == until:
            break
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.recipes.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "recipes" / "demo.yaml")
    parser.add_argument("--until", help=f"stop after this step ({', '.join(STEPS)})")
    parser.add_argument("--only", help="run this step alone, even if done")
    parser.add_argument("overrides", nargs="*", help="name=value settings, e.g. root=data/demo2 pretrain.steps=100")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("bitsandbytes", "torchao", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        recipe = load_config(DemoRecipe, args.config, args.overrides)
        times = run(recipe, until=args.until, only=args.only)
    except (ValueError, FileNotFoundError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    except RuntimeError as error:
        sys.stderr.write(f"failed: {error}\n")
        return 1
    sys.stdout.write("".join(f"{name}: {seconds:.0f} s\n" for name, seconds in times.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
