"""Evaluate an editing model on a benchmark: run it on every pair, score the edits, write a report.

    python -m training.evaluate --config configs/eval/world.yaml --model models/demo --output runs/eval/demo
    python -m training.evaluate --config configs/eval/world.yaml --model source --output runs/eval/identity
    python -m training.evaluate --benchmark bench.jsonl --edits my_edits/ --output runs/eval/mine height=64 ...

The benchmark is a pairs manifest (`training/curation/manifest.py`) whose `target` (the ground truth) and `mask` may
be null. The model is a pipeline folder or preset (`editor.loading.load_pipeline`), `source` (the identity baseline:
the source returned unchanged, so every score can be read against doing nothing), or `--edits DIR` holding one
`<id>.mp4` per record (scored as they are, nothing generated). Clips are read at the model's frame rate, size and
frame count (its saved defaults unless the config says otherwise); ground truth and masks the same way, so frames
line up.

Written to the output folder:

| path | what |
|---|---|
| `results.json` | settings, model identity, every sample's scores, aggregates per edit type, distributions, drops |
| `results.md` | one table per run: a row per edit type and one for all |
| `report.html` | the tables, plots and, per sample, a frame strip (source / edit / ground truth) with its scores |
| `edits/<id>.mp4`, `strips/<id>.png`, `plots/*.png` | what the report shows |
| `samples/<id>.json` | one scored sample each: a rerun into the same folder skips these |
| `run.json` | what the samples depend on: a rerun with other settings is refused |

Exit codes: 0 done, 2 bad arguments, config or input, 1 anything else.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from editor.video import write_video
from training.config import load_config, to_dict
from training.curation.backends import KINDS, BackendConfig, build_describer
from training.curation.pipeline import stable_seed
from training.evaluation.inputs import (
    Drop,
    Geometry,
    read_benchmark,
    read_clip,
    read_mask,
    sample_name,
    weights_digest,
)
from training.evaluation.report import write_reports, write_strip, write_text
from training.evaluation.scoring import (
    METRICS,
    PSNR_CAP_DB,
    Scorer,
    aggregate,
    clean_success,
    psnr_outside_edit,
    strict_success,
)

if TYPE_CHECKING:  # the pipeline's imports take seconds: only a run that generates pays for them
    from editor.pipeline import VideoEditPipeline
    from editor.presets import EditDefaults
    from training.curation.backends import Describer
    from training.metrics import EfficientNetLite0Features

logger = logging.getLogger(__name__)

IDENTITY = "source"
IDENTITY_NAME = "identity (source unchanged)"
RESULTS_VERSION = 1


@dataclass
class EvalConfig:
    """What to evaluate, on which benchmark, how to score it, and where the results go (see configs/eval/)."""

    benchmark: Path | None = None  # a pairs manifest; target and mask may be null
    model: str | None = None  # a pipeline folder, a preset (icve), or "source" for the identity baseline
    edits: Path | None = None  # score these <id>.mp4 files instead of generating; `model` then only names them
    # score the ground truth through the model's latent codec (encoded, decoded) instead of the model's edits: what
    # a transformer that predicted the target's latents exactly would score, so the codec's share of the failures
    codec_ceiling: bool = False
    output: Path = Path("runs/eval")
    base: str | None = None  # preset only: the HunyuanVideo base folder
    transformer: str | None = None  # preset only: the ICVE transformer folder
    # geometry: the model's saved defaults when null; "source" and edits need them given
    height: int | None = None
    width: int | None = None
    frames: int | None = None
    fps: float | None = None
    resize_mode: str = "crop"  # or "pad"
    # sampling: the model's saved defaults when null
    steps: int | None = None
    guidance: float | None = None
    embedded_guidance: float | None = None
    negative_prompt: str | None = None
    seed: int = 0  # each sample's noise is seeded from this and its id
    device: str | None = None  # cuda when available, else cpu
    precision: str | None = None  # as the app: bf16 where it is the faster (editor.loading.prefers_bf16), else fp32
    limit: int | None = None  # only the first records of the benchmark
    # scoring
    judge: BackendConfig | None = None  # a curation describer (world, chat, transformers), or null for none
    verify: bool = True  # the procedural world's verifier; instructions it cannot parse get no verdict
    clean_psnr_db: float = 25.0  # clean success: verified and PSNR outside the mask at least this
    strict_psnr_db: float = 22.0  # strict success: clean and PSNR inside the mask at least this
    # edit types whose ground truth inside the mask is one of many right answers: strict success is clean there
    strict_free_types: list[str] = field(default_factory=lambda: ["add", "background"])
    clip: Path | None = None  # a local CLIP folder for text alignment
    features_weights: Path | None = None  # EfficientNet-Lite0 weights (.safetensors) for subject consistency
    features_backbone: str | None = None  # "module:factory" building the network those weights fit
    # report
    baseline: Path | None = None  # another run's output folder (e.g. the identity baseline's) to show beside this one
    strip_frames: int = 6  # frames per row of a sample's strip
    lossless_edits: bool = False  # exact pixels for rescoring, but browsers do not play lossless H.264


# Configuration ------------------------------------------------------------------------------------------------------


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")


def _judge_config(value: Any) -> BackendConfig | None:
    if value is None or isinstance(value, BackendConfig):
        return value
    if isinstance(value, str) and value.lower() == "none":
        return None
    if isinstance(value, str) and value in KINDS:
        return BackendConfig(kind=value)
    raise ValueError(f"judge={value!r} must be none, one of {', '.join(KINDS)}, or a backend mapping {{kind: ...}}")


def check_config(config: EvalConfig) -> EvalConfig:
    """The config with `judge` normalised; a ValueError names the first bad value."""
    if config.benchmark is None:
        raise ValueError("benchmark is required (--benchmark path/to/benchmark.jsonl)")
    if not Path(config.benchmark).is_file():
        raise FileNotFoundError(f"benchmark not found: {config.benchmark}")
    if config.model is None and config.edits is None:
        raise ValueError("model is required: a pipeline folder, a preset, or 'source' (or edits=DIR)")
    if config.model == IDENTITY and config.edits is not None:
        raise ValueError(f"model={IDENTITY!r} and edits={config.edits} contradict each other: choose one")
    if config.codec_ceiling is True and (config.model in (None, IDENTITY) or config.edits is not None):
        raise ValueError(f"codec_ceiling needs a model with a codec (a pipeline or preset), not model={config.model!r}"
                         f" with edits={config.edits}")  # fmt: skip
    if config.edits is not None and not Path(config.edits).is_dir():
        raise ValueError(f"edits={config.edits} is not a folder")
    for name in ("height", "width", "steps"):
        if getattr(config, name) is not None:
            _positive_int(name, getattr(config, name))
    if config.frames is not None:
        _positive_int("frames", config.frames, minimum=3)  # temporal metrics compare neighbouring frames
    for name in ("fps", "embedded_guidance"):
        value = getattr(config, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not value > 0):
            raise ValueError(f"{name}={value!r} must be positive")
    if config.guidance is not None and (not isinstance(config.guidance, int | float) or not config.guidance >= 1):
        raise ValueError(f"guidance={config.guidance!r} must be >= 1 (1 disables classifier-free guidance)")
    if config.resize_mode not in ("crop", "pad"):
        raise ValueError(f"resize_mode={config.resize_mode!r} must be 'crop' or 'pad'")
    if isinstance(config.seed, bool) or not isinstance(config.seed, int):
        raise ValueError(f"seed={config.seed!r} must be an integer")
    if config.limit is not None:
        _positive_int("limit", config.limit)
    _positive_int("strip_frames", config.strip_frames)
    for name in ("verify", "lossless_edits", "codec_ceiling"):
        if not isinstance(getattr(config, name), bool):
            raise ValueError(f"{name}={getattr(config, name)!r} must be true or false")
    for name in ("clean_psnr_db", "strict_psnr_db"):
        threshold = getattr(config, name)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold <= PSNR_CAP_DB:
            raise ValueError(f"{name}={threshold!r} must be a number of dB in (0, {PSNR_CAP_DB:g}]")
    free = config.strict_free_types
    if not isinstance(free, list | tuple) or not all(isinstance(t, str) for t in free):
        raise ValueError(f"strict_free_types={free!r} must be a list of edit type names, e.g. [add, background]")
    if config.clip is not None and not Path(config.clip).is_dir():
        raise ValueError(f"clip={config.clip} is not a local CLIP folder")
    if (config.features_weights is None) != (config.features_backbone is None):
        raise ValueError("features_weights and features_backbone go together: give both or neither")
    if config.features_weights is not None and not Path(config.features_weights).is_file():
        raise ValueError(f"features_weights={config.features_weights} does not exist")
    return dataclasses.replace(config, judge=_judge_config(config.judge))


def _model_defaults(config: EvalConfig) -> EditDefaults | None:
    """The model's saved `EditDefaults`, read without loading any weight; None for the baseline and plain labels."""
    from editor.presets import ICVE, PRESETS, EditDefaults

    model = config.model
    if model is None or model == IDENTITY:
        return None
    if model in PRESETS:
        return PRESETS[model].defaults
    index = Path(model).expanduser() / "model_index.json"
    if not index.is_file():
        if config.edits is not None:
            return None  # the name of whatever made the edits
        known = ", ".join(sorted(PRESETS))
        raise ValueError(f"model={model!r} is neither {IDENTITY!r}, a preset ({known}) nor a pipeline folder")
    saved = json.loads(index.read_text()).get("defaults")
    return EditDefaults.from_dict(saved) if saved else ICVE.defaults


def resolve_geometry(config: EvalConfig, defaults: EditDefaults | None) -> Geometry:
    values = {}
    for name, default_name in (("height", "height"), ("width", "width"), ("frames", "num_frames"), ("fps", "fps")):
        value = getattr(config, name)
        if value is None and defaults is not None:
            value = getattr(defaults, default_name)
        if value is None:
            raise ValueError(
                f"{name} is not set: the identity baseline and precomputed edits take the geometry of the model "
                f"they are compared with ({name}=...)"
            )
        values[name] = value
    if values["frames"] < 3:
        raise ValueError(f"frames={values['frames']} must be at least 3: temporal metrics compare neighbouring frames")
    return Geometry(resize_mode=config.resize_mode, **values)


# Editors ------------------------------------------------------------------------------------------------------------

Editor = Callable[[dict, str, np.ndarray], np.ndarray]  # (record, sample name, source frames) -> edited frames


def _identity_editor(record: dict, name: str, source: np.ndarray) -> np.ndarray:
    return source.copy()


def _precomputed_editor(folder: Path, geometry: Geometry) -> Editor:
    def edit(record: dict, name: str, source: np.ndarray) -> np.ndarray:
        return read_clip({"path": str(folder / f"{name}.mp4"), "start": 0.0, "end": None}, geometry, "edit")

    return edit


class _PipelineEditor:
    """Edits with a `VideoEditPipeline`, loaded on first use: a rerun over a finished folder never loads it."""

    def __init__(self, config: EvalConfig, geometry: Geometry, pipe: VideoEditPipeline | None = None) -> None:
        self.config = config
        self.geometry = geometry
        self.pipe = pipe
        self.checked = False

    def load(self) -> VideoEditPipeline:
        if self.pipe is None:
            from editor.loading import LoadOptions, load_pipeline

            g = self.geometry
            options = LoadOptions(
                device=self.config.device, precision=self.config.precision, frames=g.frames, height=g.height,
                width=g.width,
            )  # fmt: skip
            logger.info("loading %s", self.config.model)
            self.pipe = load_pipeline(
                self.config.model, base=self.config.base, transformer=self.config.transformer, options=options
            )
        if not self.checked:
            g, pipe = self.geometry, self.pipe
            if (g.frames - 1) % pipe.temporal_multiple:
                raise ValueError(f"frames={g.frames} must be k * {pipe.temporal_multiple} + 1 for this model")
            for name in ("height", "width"):
                if getattr(g, name) % pipe.spatial_multiple:
                    raise ValueError(f"{name}={getattr(g, name)} must be a multiple of {pipe.spatial_multiple}")
            pipe.set_progress_bar_config(disable=True)
            self.checked = True
        return self.pipe

    def __call__(self, record: dict, name: str, source: np.ndarray) -> np.ndarray:
        import torch

        c, g = self.config, self.geometry
        generator = torch.Generator().manual_seed(stable_seed(c.seed, record["id"]))
        result = self.load()(
            video=source, prompt=record["instruction"], negative_prompt=c.negative_prompt, height=g.height,
            width=g.width, num_frames=g.frames, fps=g.fps, resize_mode=g.resize_mode, num_inference_steps=c.steps,
            guidance_scale=c.guidance, embedded_guidance_scale=c.embedded_guidance, generator=generator,
        )  # fmt: skip
        return result.frames[0]


class _CodecCeilingEditor(_PipelineEditor):
    """The ground truth encoded and decoded by the pipeline's codec, in place of an edit."""

    def __call__(self, record: dict, name: str, source: np.ndarray) -> np.ndarray:
        if record["target"] is None:
            raise Drop("no ground truth", f"{record['id']} has no target to pass through the codec")
        pipe = self.load()
        target = read_clip(record["target"], self.geometry, "target")
        return pipe.decode_latents(pipe.encode_video(target, pipe._execution_device))[0]


def model_identity(config: EvalConfig, defaults: EditDefaults | None) -> dict:
    """What made the edits, as the results and the resume check record it."""
    if config.model == IDENTITY:
        return {"kind": "identity", "name": IDENTITY_NAME}
    if config.edits is not None:
        edits = str(Path(config.edits).resolve())
        return {"kind": "edits", "name": config.model or "precomputed edits", "edits": edits}
    from editor.loading import LoadOptions
    from editor.presets import PRESETS

    preset = config.model in PRESETS
    d = defaults
    sampling = {
        "steps": config.steps or d.num_inference_steps,
        "guidance": config.guidance or d.guidance_scale,
        "embedded_guidance": config.embedded_guidance or d.embedded_guidance_scale,
        "negative_prompt": d.negative_prompt if config.negative_prompt is None else config.negative_prompt,
        "seed": config.seed,
    }
    identity = {
        "kind": "preset" if preset else "pipeline",
        "name": config.model,
        "path": None if preset else str(Path(config.model).expanduser().resolve()),
        "base": config.base,
        "transformer": config.transformer,
        "precision": LoadOptions(device=config.device, precision=config.precision).resolved_precision(),
        "weights": weights_digest(_weight_folders(config)),
    }
    if config.codec_ceiling:
        return {**identity, "kind": "codec_ceiling", "name": f"ground truth through the codec of {config.model}"}
    return {**identity, "sampling": sampling}


def _weight_folders(config: EvalConfig) -> list[Path | str]:
    """Where the model's weights come from, as the loader resolves them: the preset's defaults fill what is unset."""
    from editor.loading import bundled_folder
    from editor.presets import PRESETS

    preset = PRESETS.get(config.model)
    if preset is None:
        return [Path(config.model).expanduser()]
    if preset.bundled:
        return [bundled_folder(preset)]
    references = (config.base or preset.base, config.transformer or preset.transformer)
    return [reference for reference in references if reference is not None]


def _load_extractor(config: EvalConfig) -> EfficientNetLite0Features | None:
    if config.features_weights is None:
        return None
    from training.metrics import EfficientNetLite0Features

    module_name, _, attribute = config.features_backbone.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        message = f"features_backbone={config.features_backbone!r} is not an importable module:factory"
        raise ValueError(message) from error
    return EfficientNetLite0Features(factory(), config.features_weights, device=config.device or "cpu")


# Running ------------------------------------------------------------------------------------------------------------


def load_baseline(path: Path, geometry: Geometry) -> dict:
    """The name and aggregates of another run, to compare against; its clips must have been read the same way."""
    file = Path(path) / "results.json" if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"baseline={path}: no results.json there (run python -m training.evaluate first)")
    data = json.loads(file.read_text())
    if data.get("version") != RESULTS_VERSION:
        raise ValueError(f"baseline={path} has results version {data.get('version')!r}, expected {RESULTS_VERSION}")
    if data["geometry"] != dataclasses.asdict(geometry):
        raise ValueError(f"baseline={path} read its clips as {data['geometry']}, this run as {geometry}")
    aggregates = {key: data["aggregates"][key] for key in ("overall", "by_edit_type")}
    return {"name": data["model"]["name"], "path": str(file), "benchmark": data["benchmark"], "aggregates": aggregates}


def _check_run(output: Path, settings: dict, device: str | None) -> None:
    """Record what the samples depend on; refuse to mix samples made with other settings into one folder."""
    path = output / "run.json"
    if path.is_file():
        before = json.loads(path.read_text())
        model = before.get("model") or {}
        if model.get("kind") in ("pipeline", "preset") and "precision" in model and model["precision"] is None:
            from editor.loading import LoadOptions

            # Recorded before the default precision was resolved: null meant bf16 on CUDA and fp32 elsewhere.
            model["precision"] = "bf16" if LoadOptions(device=device).torch_device().type == "cuda" else "fp32"
        if "weights" not in model and "weights" in settings["model"]:
            # Recorded before the weights were: such a folder was trusted to hold the path's current model.
            model["weights"] = settings["model"]["weights"]
        if before != settings:
            changed = ", ".join(sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k)))
            raise ValueError(
                f"{output} holds samples made with other settings ({changed} differ); "
                f"choose another output folder or delete this one"
            )
    write_text(path, json.dumps(settings, indent=2) + "\n")


def _evaluate_sample(
    record: dict, name: str, editor: Editor, scorer: Scorer, geometry: Geometry, config: EvalConfig
) -> dict:
    output = Path(config.output)
    source = read_clip(record["source"], geometry, "source")
    target = None if record["target"] is None else read_clip(record["target"], geometry, "target")
    mask = None
    if record["mask"] is not None:
        mask = read_mask(record["mask"], geometry)
    started = time.perf_counter()
    edited = editor(record, name, source)
    edit_seconds = time.perf_counter() - started
    if edited.shape != source.shape:
        raise ValueError(f"the edit of {record['id']} is shaped {edited.shape}, its source {source.shape}")
    edit_path = output / "edits" / f"{name}.mp4"
    if config.edits is None or edit_path.resolve() != (Path(config.edits) / f"{name}.mp4").resolve():
        write_video(edit_path, edited, geometry.fps, lossless=config.lossless_edits)
    started = time.perf_counter()
    scores = scorer.score(source, edited, record["instruction"], target, mask)
    rows = [("source", source), ("edit", edited)] + ([("ground truth", target)] if target is not None else [])
    write_strip(output / "strips" / f"{name}.png", rows, config.strip_frames)
    return {
        "id": record["id"],
        "name": name,
        "instruction": record["instruction"],
        "edit_type": record["edit_type"],
        "has_ground_truth": target is not None,
        "has_mask": mask is not None,
        "edit": f"edits/{name}.mp4",
        "strip": f"strips/{name}.png",
        **scores,
        "seconds": {"edit": round(edit_seconds, 3), "score": round(time.perf_counter() - started, 3)},
    }


def _lacks_outside_edit(sample: dict, config: EvalConfig) -> bool:
    """Whether `sample` was scored before PSNR outside the edit existed, and would have it now."""
    metrics = sample["metrics"]
    scored = config.verify and sample["has_ground_truth"] and sample["has_mask"]
    return scored and "psnr_outside_edit" not in metrics and "psnr_outside_mask" in metrics


def _add_outside_edit(sample: dict, record: dict, geometry: Geometry, output: Path) -> dict:
    """`sample` with PSNR outside the edit, from its saved edit. It differs from PSNR outside the mask only where
    an added object was found, and only then is it measured on the saved (compressed) edit."""
    from training.world.verifier import added_region

    metrics = dict(sample["metrics"])
    metrics["psnr_outside_edit"] = metrics["psnr_outside_mask"]
    if sample["edit_type"] == "add" and metrics["psnr_outside_mask"] is not None:
        source = read_clip(record["source"], geometry, "source")
        edited = read_clip({"path": str(output / sample["edit"]), "start": 0.0, "end": None}, geometry, "edit")
        added = added_region(source, edited, record["instruction"])
        if added is not None:
            target = read_clip(record["target"], geometry, "target")
            mask = read_mask(record["mask"], geometry)
            metrics["psnr_outside_edit"] = psnr_outside_edit(edited, target, mask, added)
    logger.info("%s: PSNR outside the edit added to a sample scored before it existed", sample["id"])
    return {**sample, "metrics": metrics}


def _load_sample(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        logger.warning("re-scoring %s: unreadable (%s)", path, error)
        return None


def evaluate(
    config: EvalConfig,
    *,
    pipe: VideoEditPipeline | None = None,
    describer: Describer | None = None,
    extractor: EfficientNetLite0Features | None = None,
) -> dict:
    """Edit and score every record of `config.benchmark`; returns what `results.json` holds.

    `pipe`, `describer` and `extractor` replace the pipeline, judge and feature extractor the config names.
    """
    config = check_config(config)
    records = read_benchmark(config.benchmark)[: config.limit]
    defaults = _model_defaults(config)
    geometry = resolve_geometry(config, defaults)
    identity = model_identity(config, defaults)
    if pipe is not None and "precision" in identity:
        # A ready-made pipeline runs in its own dtype, whatever the config would have loaded it in.
        from editor.loading import precision_name

        identity["precision"] = precision_name(pipe.transformer.dtype)
    baseline = None if config.baseline is None else load_baseline(config.baseline, geometry)
    if config.model == IDENTITY:
        editor: Editor = _identity_editor
    elif config.edits is not None:
        editor = _precomputed_editor(Path(config.edits), geometry)
    else:
        editor = (_CodecCeilingEditor if config.codec_ceiling else _PipelineEditor)(config, geometry, pipe)

    output = Path(config.output)
    for folder in ("samples", "edits", "strips"):
        (output / folder).mkdir(parents=True, exist_ok=True)
    judge = None if config.judge is None else to_dict(config.judge)
    features = None if config.features_weights is None else str(Path(config.features_weights).resolve())
    scoring = {"judge": judge, "verify": config.verify, "clip": None if config.clip is None else str(config.clip),
               "features_weights": features, "features_backbone": config.features_backbone}  # fmt: skip
    _check_run(output, {"version": RESULTS_VERSION, "model": identity, "geometry": dataclasses.asdict(geometry),
                        "scoring": scoring}, config.device)  # fmt: skip

    if describer is None and config.judge is not None:
        describer = build_describer(config.judge)
    scorer = Scorer(
        describer=describer, extractor=extractor if extractor is not None else _load_extractor(config),
        clip_model=config.clip, verify=config.verify,
    )  # fmt: skip

    samples: list[dict] = []
    dropped: list[dict] = []
    seen: set[str] = set()
    resumed = 0
    for number, record in enumerate(records, 1):
        record_id = record["id"]
        if record_id in seen:
            dropped.append({"id": record_id, "reason": "duplicate id", "detail": "appears more than once"})
            continue
        seen.add(record_id)
        name = sample_name(record_id)
        path = output / "samples" / f"{name}.json"
        sample = _load_sample(path) if path.is_file() else None
        if sample is not None:
            if _lacks_outside_edit(sample, config):
                sample = _add_outside_edit(sample, record, geometry, output)
                write_text(path, json.dumps(sample, indent=2, allow_nan=False) + "\n")
            samples.append(sample)
            resumed += 1
            continue
        if isinstance(editor, _PipelineEditor):
            editor.load()  # here, so that loading is not timed as the first sample's edit
        try:
            sample = _evaluate_sample(record, name, editor, scorer, geometry, config)
        except Drop as drop:
            logger.warning("dropping %s (%s): %s", record_id, drop.reason, drop)
            dropped.append({"id": record_id, "reason": drop.reason, "detail": str(drop)})
            continue
        write_text(path, json.dumps(sample, indent=2, allow_nan=False) + "\n")
        samples.append(sample)
        verdict = (sample["verifier"] or {}).get("followed")
        logger.info("[%d/%d] %s: verified %s, flickering %.4f", number, len(records), record_id, verdict,
                    sample["metrics"]["temporal_flickering"])  # fmt: skip

    for sample in samples:
        sample["clean_success"] = clean_success(sample, config.clean_psnr_db)
        sample["strict_success"] = strict_success(sample, config.strict_psnr_db, config.strict_free_types)
    results = {
        "version": RESULTS_VERSION,
        "benchmark": str(config.benchmark),
        "model": identity,
        "geometry": dataclasses.asdict(geometry),
        "settings": to_dict(config),
        "metrics": {m.key: {"label": m.label, "reference": m.reference, "proxy": m.proxy} for m in METRICS},
        "proxies": [m.key for m in METRICS if m.proxy],
        "unavailable": scorer.unavailable,
        "psnr_cap_db": PSNR_CAP_DB,
        "clean_psnr_db": config.clean_psnr_db,
        "strict_psnr_db": config.strict_psnr_db,
        "strict_free_types": list(config.strict_free_types),
        "counts": {
            "records": len(records),
            "scored": len(samples),
            "resumed": resumed,
            "dropped": dict(Counter(d["reason"] for d in dropped)),
            "judge_failures": sum(1 for s in samples if s.get("judge_error")),
        },
        "dropped": dropped,
        "aggregates": aggregate(samples),
        "baseline": baseline,
        "samples": samples,
    }
    write_text(output / "results.json", json.dumps(results, indent=2, allow_nan=False) + "\n")
    write_reports(results, output)
    return results


# Command line -------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, help="YAML config (EvalConfig fields; see configs/eval/)")
    parser.add_argument("--benchmark", type=Path, help="benchmark manifest (JSONL of pair records)")
    parser.add_argument("--model", help=f"pipeline folder, preset, or {IDENTITY!r} for the identity baseline")
    parser.add_argument("--edits", type=Path, help="folder of precomputed <id>.mp4 edits to score")
    parser.add_argument("--output", type=Path, help="folder for results.json, results.md, report.html")
    parser.add_argument("--clip", type=Path, help="local CLIP folder for text alignment")
    parser.add_argument("--judge", help=f"none or a judge backend kind ({', '.join(KINDS)})")
    parser.add_argument("--baseline", type=Path, help="output folder of another run to compare against")
    parser.add_argument("--debug", action="store_true", help="debug logs, and the traceback of a failure")
    parser.add_argument("overrides", nargs="*", help="name=value settings, e.g. steps=20 judge.kind=world")
    args = parser.parse_intermixed_args(argv)
    level = logging.DEBUG if args.debug else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("bitsandbytes", "torchao", "httpx", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    flags = {
        name: getattr(args, name) for name in ("benchmark", "model", "edits", "output", "clip", "judge", "baseline")
    }
    try:
        config = load_config(EvalConfig, args.config, args.overrides)
        config = dataclasses.replace(config, **{k: v for k, v in flags.items() if v is not None})
        results = evaluate(config)
    except (ValueError, FileNotFoundError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    except Exception as error:  # one clear line rather than a traceback, which --debug adds
        if args.debug:
            logger.exception("failed")
        sys.stderr.write(f"error: {type(error).__name__}: {error}\n")
        return 1
    counts = results["counts"]
    dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(counts["dropped"].items())) or "none dropped"
    accuracy = results["aggregates"]["overall"]["accuracy"]
    rate = "n/a" if accuracy["rate"] is None else f"{accuracy['rate']:.1%}"
    sys.stdout.write(
        f"{results['model']['name']}: {counts['scored']} samples scored ({counts['resumed']} resumed, {dropped}); "
        f"verified {rate} -> {Path(config.output) / 'report.html'}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
