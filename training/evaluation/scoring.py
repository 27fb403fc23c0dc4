"""Scores of one edited clip, and their aggregates per edit type.

Every number comes from `training.metrics`, the curation judge backends or the procedural world's verifier; this
module only decides which apply to a sample, names them, and averages them.

| key | what | needs |
|---|---|---|
| `temporal_flickering` | VBench temporal flickering (exact) | - |
| `subject_consistency_proxy` | VBench subject consistency on EfficientNet-Lite0 features (proxy for DINO) | weights |
| `motion_smoothness_proxy` | VBench motion smoothness with Farneback-flow midpoints (proxy for AMT) | - |
| `psnr`, `ssim` | against the ground truth, whole clip | ground truth |
| `psnr_outside_mask`, `ssim_outside_mask` | against the ground truth where the mask is 0 | ground truth, mask |
| `psnr_inside_mask` | against the ground truth where the mask is 1: the edit itself | ground truth, mask |
| `clip_text_alignment` | CLIP score of the edited frames and the instruction | a local CLIP folder |
| `judge_*` | EditVerse rubric: prompt following, edit quality, background consistency (0-3), total (0-9) | a judge |
| `verified` | the world's verifier found the requested change and nothing else | world instructions |
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.curation.backends.base import JUDGE_CRITERIA, BackendReplyError, Describer, check_judge_scores
from training.metrics import (
    EfficientNetLite0Features,
    clip_text_alignment,
    motion_smoothness_proxy,
    psnr,
    ssim,
    subject_consistency_proxy,
    temporal_flickering,
)

logger = logging.getLogger(__name__)

# `training.metrics.psnr` is infinite for identical clips, which JSON cannot hold and which would swallow every mean;
# 100 dB is above what any uint8 difference short of a handful of pixels reaches.
PSNR_CAP_DB = 100.0
JUDGE_MAX = 3 * len(JUDGE_CRITERIA)


@dataclass(frozen=True)
class MetricInfo:
    key: str
    label: str  # as shown in tables and plots: proxies say so
    reference: str
    proxy: bool = False


METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("temporal_flickering", "Flickering", "VBench temporal flickering, exact; 1 = no change between frames"),
    MetricInfo(
        "subject_consistency_proxy",
        "Subject consistency (proxy)",
        "VBench subject consistency computed on EfficientNet-Lite0 features instead of DINO",
        proxy=True,
    ),
    MetricInfo(
        "motion_smoothness_proxy",
        "Motion smoothness (proxy)",
        "VBench motion smoothness with Farneback-flow midpoint interpolation instead of AMT",
        proxy=True,
    ),
    MetricInfo("psnr", "PSNR (dB)", f"against the ground truth, whole clip; capped at {PSNR_CAP_DB:g} dB"),
    MetricInfo(
        "psnr_outside_mask",
        "PSNR outside mask (dB)",
        f"against the ground truth where the edit mask is 0; capped at {PSNR_CAP_DB:g} dB",
    ),
    MetricInfo(
        "psnr_outside_edit",
        "PSNR outside edit (dB)",
        "as outside mask, but an added object counts as edited wherever the edit put it (the instruction may leave "
        f"its place open); capped at {PSNR_CAP_DB:g} dB",
    ),
    MetricInfo(
        "psnr_inside_mask",
        "PSNR inside mask (dB)",
        f"against the ground truth where the edit mask is 1 (the whole clip for whole-frame edits); capped at "
        f"{PSNR_CAP_DB:g} dB",
    ),
    MetricInfo("ssim", "SSIM", "against the ground truth, whole clip, on luma"),
    MetricInfo("ssim_outside_mask", "SSIM outside mask", "against the ground truth where the edit mask is 0"),
    MetricInfo("clip_text_alignment", "CLIP text alignment", "mean cosine of CLIP frame and instruction features"),
    MetricInfo("judge_prompt_following", "Judge: prompt following", "EditVerse rubric, 0-3"),
    MetricInfo("judge_edit_quality", "Judge: edit quality", "EditVerse rubric, 0-3"),
    MetricInfo("judge_background_consistency", "Judge: background consistency", "EditVerse rubric, 0-3"),
    MetricInfo("judge_total", "Judge total (0-9)", "EditVerse rubric: the sum of the three 0-3 scores"),
)
METRIC_INFO = {m.key: m for m in METRICS}


def _capped_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    return min(psnr(a, b, mask), PSNR_CAP_DB)


def psnr_outside_edit(
    edited: np.ndarray, target: np.ndarray, mask: np.ndarray, added: np.ndarray | None
) -> float | None:
    """PSNR against the ground truth outside the mask and outside `added`, the object an add instruction asked for
    where the edit put it (`training.world.verifier.added_region`); None where nothing lies outside."""
    outside = ~mask if added is None else ~(mask | added[: len(mask)])
    return _capped_psnr(edited, target, outside) if outside.any() else None


class Scorer:
    """Scores edited clips with whichever scorers are available; `unavailable` says why the others are not.

    describer: the judge (a curation `Describer`), or None for no judge.
    extractor: EfficientNet-Lite0 features for the subject-consistency proxy, or None when there are no weights.
    clip_model: a local CLIP folder for text alignment, or None to leave it out.
    verify: run the procedural world's verifier on every sample.
    """

    def __init__(
        self,
        *,
        describer: Describer | None = None,
        extractor: EfficientNetLite0Features | None = None,
        clip_model: Path | None = None,
        verify: bool = True,
    ) -> None:
        self.describer = describer
        self.extractor = extractor
        self.clip_model = clip_model
        self.verify = verify
        self.unavailable: dict[str, str] = {}
        if extractor is None:
            self.unavailable["subject_consistency_proxy"] = (
                "no EfficientNet-Lite0 weights were given (features_weights=..., features_backbone=...)"
            )
        if clip_model is None:
            self.unavailable["clip_text_alignment"] = "no local CLIP folder was given (--clip)"
        if describer is None:
            self.unavailable["judge_total"] = "no judge was chosen (judge=world|chat|transformers)"

    def score(
        self,
        source: np.ndarray,
        edited: np.ndarray,
        instruction: str,
        target: np.ndarray | None = None,
        mask: np.ndarray | None = None,
    ) -> dict:
        """`{"metrics": {key: float | None}, "judge_error": str | None, "verifier": {...} | None}` for one edit."""
        metrics: dict[str, float | int | None] = {
            "temporal_flickering": temporal_flickering(edited),
            "subject_consistency_proxy": (
                None if self.extractor is None else subject_consistency_proxy(edited, self.extractor)
            ),
            "motion_smoothness_proxy": motion_smoothness_proxy(edited),
        }
        if target is not None:
            metrics["psnr"] = _capped_psnr(edited, target)
            metrics["ssim"] = ssim(edited, target)
            outside = None if mask is None else ~mask
            # A whole-frame edit (a style) leaves nothing outside its mask to compare.
            has_outside = outside is not None and bool(outside.any())
            metrics["psnr_outside_mask"] = _capped_psnr(edited, target, outside) if has_outside else None
            metrics["ssim_outside_mask"] = ssim(edited, target, outside) if has_outside else None
            has_inside = mask is not None and bool(mask.any())
            metrics["psnr_inside_mask"] = _capped_psnr(edited, target, mask) if has_inside else None
        if self.clip_model is not None:
            metrics["clip_text_alignment"] = clip_text_alignment(edited, instruction, self.clip_model)
        judge_error = None
        if self.describer is not None:
            scores, judge_error = self._judge(source, edited, instruction)
            for name in JUDGE_CRITERIA:
                metrics[f"judge_{name}"] = None if scores is None else scores[name]
            metrics["judge_total"] = None if scores is None else sum(scores.values())
        verifier = None
        if self.verify:
            from training.world.verifier import verify

            verdict = verify(source, edited, instruction)
            # An instruction the world's language does not parse (real footage) has no verdict, rather than a failure.
            followed = None if verdict.edit_type == "unknown" else bool(verdict.followed)
            verifier = {"followed": followed, "edit_type": verdict.edit_type, "reason": verdict.reason}
            if target is not None and mask is not None:
                metrics["psnr_outside_edit"] = psnr_outside_edit(edited, target, mask, verdict.added)
        return {"metrics": metrics, "judge_error": judge_error, "verifier": verifier}

    def _judge(self, source: np.ndarray, edited: np.ndarray, instruction: str) -> tuple[dict | None, str | None]:
        try:
            reply = self.describer.judge(source, edited, instruction)
            return check_judge_scores(reply, type(self.describer).__name__), None
        except BackendReplyError as error:
            logger.warning("judge failed: %s", error)
            return None, str(error)


# Aggregates ---------------------------------------------------------------------------------------------------------


def clean_success(sample: dict, psnr_threshold: float) -> bool | None:
    """Verified, and the ground truth's unedited pixels kept (PSNR outside the edit - the mask, and an added object
    wherever it went - or of the whole clip when the record has no mask, at least `psnr_threshold`). None without a
    verdict or a ground truth."""
    verifier = sample.get("verifier") or {}
    followed = verifier.get("followed")
    metrics = sample["metrics"]
    if followed is None or "psnr" not in metrics:
        return None
    if not sample["has_mask"]:
        return bool(followed and metrics["psnr"] >= psnr_threshold)
    # Samples scored before this metric existed gain it on resume (`training.evaluate`), so every verdict has it.
    kept = metrics["psnr_outside_edit"]
    # Nothing lies outside a whole-frame mask: there only the verdict counts.
    return bool(followed and (kept is None or kept >= psnr_threshold))


def strict_success(sample: dict, psnr_threshold: float, free_types: Iterable[str]) -> bool | None:
    """Clean, and the edit region itself close to the ground truth (PSNR inside the mask at least `psnr_threshold`).

    The verifier only checks that the named change happened, so a removed object that leaves a smear of another
    colour still passes it. Where the ground truth inside the region is fixed by the source and the instruction
    (removing, recolouring, replacing an object in place, a global style) it says what the region should look like;
    for the edit types in `free_types` it is one of many right answers (where an added object goes, which tones a
    new background takes), so there the clean verdict stands alone.
    """
    clean = sample.get("clean_success")
    if not clean or sample["edit_type"] in set(free_types):
        return clean
    inside = sample["metrics"].get("psnr_inside_mask")
    return inside is None or inside >= psnr_threshold


def _rate(values: Iterable[bool | None]) -> dict:
    known = [v for v in values if v is not None]
    hits = sum(known)
    return {"hits": hits, "of": len(known), "rate": hits / len(known) if known else None}


def summarise(samples: list[dict]) -> dict:
    """Count, per-metric mean (over the samples that have the metric), verifier accuracy, clean and strict success."""
    metrics = {}
    for info in METRICS:
        values = [s["metrics"][info.key] for s in samples if s["metrics"].get(info.key) is not None]
        if values or any(info.key in s["metrics"] for s in samples):
            metrics[info.key] = {"mean": float(np.mean(values)) if values else None, "n": len(values)}
    return {
        "count": len(samples),
        "metrics": metrics,
        "accuracy": _rate((s.get("verifier") or {}).get("followed") for s in samples),
        "clean_success": _rate(s["clean_success"] for s in samples),
        "strict_success": _rate(s.get("strict_success") for s in samples),
        "judge_failures": sum(1 for s in samples if s.get("judge_error")),
    }


def distribution(values: list[float]) -> dict:
    """Quantiles of one metric over all samples."""
    if not values:
        return {"n": 0}
    q = np.quantile(np.asarray(values, dtype=np.float64), [0.0, 0.25, 0.5, 0.75, 1.0])
    return {"n": len(values), "min": q[0], "p25": q[1], "median": q[2], "p75": q[3], "max": q[4],
            "mean": float(np.mean(values))}  # fmt: skip


def aggregate(samples: list[dict]) -> dict:
    """Summaries overall and per edit type (in order of first appearance), and each metric's distribution."""
    by_type: dict[str, list[dict]] = {}
    for sample in samples:
        by_type.setdefault(sample["edit_type"] or "unknown", []).append(sample)
    distributions = {}
    for info in METRICS:
        values = [s["metrics"][info.key] for s in samples if s["metrics"].get(info.key) is not None]
        if values:
            distributions[info.key] = {k: float(v) for k, v in distribution(values).items()}
    return {
        "overall": summarise(samples),
        "by_edit_type": {name: summarise(group) for name, group in by_type.items()},
        "distributions": distributions,
    }
