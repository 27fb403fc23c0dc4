"""The paper's ablation on the demo world: `python -m training.recipes.ablation [--config ...] [name=value ...]`.

Every variant trains the same model from the same starting weights (the recipe's text-to-video base when it trains
one, else the untrained model) for the same number of optimizer steps (`budget`, equal compute) and draws from the
same stage-2 pairs (equal pair budget, except where the variant is the pair budget), then is scored on the recipe's
held-out benchmark. `VARIANT_STAGES` below says what each variant trains on.

Each (variant, seed) is a resumable run under `root/ablation/`; `summary.json` and `summary.md` collect the clean
and strict success, verifier accuracy and PSNR per variant (mean and spread over seeds), rewritten after every run.
The recipe's data steps (up to `cache_stage2`, and `base` when it has one) must have run:
`python -m training.recipes.demo --until cache_stage2` (`--until base`).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.atomic import atomic_write, atomic_write_dir
from training.config import from_dict, load_config, to_dict
from training.recipes.demo import REPO, DemoRecipe, eval_config, starting_point, train_config

logger = logging.getLogger(__name__)

# Each variant: what it trains on stage-1 pairs (unpaired clips), and on stage-2 pairs (editing pairs).
VARIANT_STAGES = {
    "sft": ("-", "all steps"),
    "pretrain": ("all steps", "-"),
    "pretrain_sft": ("`pretrain_share` of the steps", "the rest"),
    "pretrain_sft_10pct": ("as `pretrain_sft`", "as `pretrain_sft`, on 10% of the pairs"),
    "pretrain_sft_offset": ("as `pretrain_sft`, the source at offset RoPE positions instead of shared ones", "as "
                            "`pretrain_sft`, offset positions"),
}  # fmt: skip
VARIANTS = tuple(VARIANT_STAGES)


@dataclass
class AblationConfig:
    recipe: Path = REPO / "configs" / "recipes" / "demo.yaml"
    recipe_overrides: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    seeds: list[int] = field(default_factory=lambda: [0])
    budget: int = 1500  # optimizer steps per run
    pretrain_share: float = 0.3  # of the budget, for the two-stage variants
    pair_fraction: float = 0.1  # for pretrain_sft_10pct
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields for every run (e.g. validation.every)

    def check(self) -> None:
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown:
            raise ValueError(f"variants={unknown} are not known; known: {list(VARIANTS)}")
        if not isinstance(self.budget, int) or self.budget < 2:
            raise ValueError(f"budget={self.budget!r} must be an integer >= 2")
        if not 0 < self.pretrain_share < 1:
            raise ValueError(f"pretrain_share={self.pretrain_share!r} must be in (0, 1)")
        if not 0 < self.pair_fraction <= 1:
            raise ValueError(f"pair_fraction={self.pair_fraction!r} must be in (0, 1]")


def _offset_init(recipe: DemoRecipe) -> Path:
    """The recipe's starting point with the source at offset positions: same weights (RoPE has none)."""
    init = starting_point(recipe)
    folder = Path(recipe.root) / "ablation" / "init-offset"
    if not (folder / "model_index.json").is_file():

        def write(tmp: Path) -> None:
            shutil.copytree(init, tmp)
            config_path = tmp / "transformer" / "config.json"
            config = json.loads(config_path.read_text())
            config["source_rope"] = "offset"
            config_path.write_text(json.dumps(config, indent=2) + "\n")

        atomic_write_dir(folder, write)
    return folder


def _stages(variant: str, config: AblationConfig) -> list[tuple[str, int]]:
    if variant == "sft":
        return [("finetune", config.budget)]
    if variant == "pretrain":
        return [("pretrain", config.budget)]
    first = max(1, round(config.budget * config.pretrain_share))
    return [("pretrain", first), ("finetune", config.budget - first)]


def _check_same_run(config) -> None:
    """Refuse a run folder trained with other settings (another budget, say): reused, its scores would stand for a
    run that never happened, and resumed, it would mix two runs' steps."""
    from training.train import TrainConfig

    saved = Path(config.output) / "config.yaml"
    if not saved.is_file():
        return
    recorded, current = to_dict(load_config(TrainConfig, saved, [])), to_dict(config)
    changed = sorted(key for key in current if recorded[key] != current[key])
    if changed:
        raise ValueError(
            f"{config.output} was trained with other settings ({', '.join(changed)} changed): give the ablation "
            "another root (recipe_overrides=[root=...]) or remove that folder to train it again"
        )


def run_variant(recipe: DemoRecipe, config: AblationConfig, variant: str, seed: int) -> Path:
    """Train one (variant, seed) and return its final pipeline folder."""
    from training.cache import CacheIndex
    from training.train import TrainConfig, train

    folder = Path(recipe.root) / "ablation" / f"{variant}-seed{seed}"
    init = str(_offset_init(recipe) if variant.endswith("offset") else starting_point(recipe))
    for stage, steps in _stages(variant, config):
        base = train_config(recipe, stage)
        # A constant LR after warmup: the recipe's decay and restarts are sized for its own, longer run.
        values = {**to_dict(base), "decay_steps": 0, "restarts": [], **config.train, "steps": steps, "seed": seed,
                  "init": init}  # fmt: skip
        values["output"] = str(folder / stage)
        values["validation"] = {**values.get("validation", {}), "every": 10**9}  # edits at the end only
        if stage == "finetune" and variant.endswith("10pct"):
            total = CacheIndex.load(base.cache).num_samples
            # At least one batch: a smaller pair budget cannot even fill a step.
            values["pairs"] = max(int(values["batch_size"]), round(total * config.pair_fraction))
        stage_config = from_dict(TrainConfig, values)
        _check_same_run(stage_config)
        final = folder / stage / "pipeline"
        if not (final / "model_index.json").is_file():
            train(stage_config, resume=True)
        init = str(final)
    return Path(init)


def _summarise(rows: list[dict]) -> dict[str, dict]:
    summary = {}
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        summary[variant] = {}
        for key in ("clean_success", "strict_success", "verified", "psnr", "psnr_outside_mask"):
            values = [r[key] for r in mine if r[key] is not None]
            summary[variant][key] = {
                "mean": statistics.fmean(values) if values else None,
                "spread": statistics.pstdev(values) if len(values) > 1 else None,
                "runs": len(values),
            }
    return summary


def _overall(results: dict) -> dict[str, float | None]:
    overall = results["aggregates"]["overall"]
    metrics = overall["metrics"]
    return {
        "clean_success": overall["clean_success"]["rate"],
        "strict_success": overall["strict_success"]["rate"],
        "verified": overall["accuracy"]["rate"],
        "psnr": metrics["psnr"]["mean"],
        "psnr_outside_mask": metrics["psnr_outside_mask"]["mean"],
    }


def run(config: AblationConfig) -> dict:
    from training.evaluate import evaluate

    config.check()
    recipe = load_config(DemoRecipe, config.recipe, config.recipe_overrides)
    root = Path(recipe.root) / "ablation"
    rows: list[dict] = []
    summary: dict = {}
    planned = len(config.seeds) * len(config.variants)
    for seed in config.seeds:
        for variant in config.variants:
            pipeline = run_variant(recipe, config, variant, seed)
            output = root / "eval" / f"{variant}-seed{seed}"
            results = evaluate(eval_config(recipe, str(pipeline), output))
            rows.append({"variant": variant, "seed": seed, **_overall(results)})
            logger.info("%s seed %d: %s", variant, seed, rows[-1])
            # Written after every run, so the runs finished so far can be read while the rest train.
            summary = {"budget_steps": config.budget, "pretrain_share": config.pretrain_share,
                       "recipe_overrides": config.recipe_overrides, "train": config.train, "runs": rows,
                       "planned_runs": planned, "planned_variants": list(config.variants),
                       "planned_seeds": list(config.seeds),
                       "variants": _summarise(rows)}  # fmt: skip
            _write_summary(root, summary)
    return summary


def _write_summary(root: Path, summary: dict) -> None:
    atomic_write(root / "summary.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=1) + "\n"))
    atomic_write(root / "summary.md", lambda tmp: tmp.write_text(summary_markdown(summary)))


def summary_markdown(summary: dict) -> str:
    def cell(stat: dict, percent: bool) -> str:
        if stat["mean"] is None:
            return "-"
        scale, unit = (100, "%") if percent else (1, "")
        text = f"{scale * stat['mean']:.1f}{unit}"
        return text + (f" ± {scale * stat['spread']:.1f}" if stat["spread"] is not None else "")

    done, planned = len(summary["runs"]), summary.get("planned_runs", len(summary["runs"]))
    lines = [
        f"Equal compute: {summary['budget_steps']} optimizer steps per run. Mean ± spread (population standard "
        "deviation) over seeds.",
        "",
        *([f"**Partial: {done} of {planned} runs have finished.**", ""] if done < planned else []),
        "| variant | runs | clean success | strict success | verified | PSNR (dB) | PSNR outside mask (dB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant, stats in summary["variants"].items():
        lines.append(
            f"| {variant} | {stats['clean_success']['runs']} | {cell(stats['clean_success'], True)} | "
            f"{cell(stats['strict_success'], True)} | {cell(stats['verified'], True)} | "
            f"{cell(stats['psnr'], False)} | {cell(stats['psnr_outside_mask'], False)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.recipes.ablation", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, help="YAML of AblationConfig fields")
    parser.add_argument("overrides", nargs="*", help="name=value settings, e.g. seeds=[0,1] budget=2000")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        summary = run(load_config(AblationConfig, args.config, args.overrides))
    except (ValueError, FileNotFoundError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    sys.stdout.write(summary_markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
