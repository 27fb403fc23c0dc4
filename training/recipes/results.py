"""Write docs/RESULTS.md from the files the demo recipe and the ablation wrote: no number in it is typed by hand.

`python -m training.recipes.results [--config configs/recipes/demo.yaml] [--output docs/RESULTS.md] [name=value ...]`

Reads `root/eval/{demo,identity}/results.json`, `root/eval/timing.json`, `root/done/*.json` (wall times),
`root/ablation/summary.json` when the ablation has run, and the manifests (data sizes); copies the plots and frame
strips it shows into `results/` next to the Markdown file, and keeps there, in `sources.json`, every number it read.
`--rewrite` writes the page again from that record alone: the recipe's files are large and live outside the
repository, the record and the page inside it.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shlex
import shutil
import statistics
import sys
from pathlib import Path

from training.atomic import atomic_write
from training.config import load_config
from training.evaluation.paired import paired_gap, sample_outcomes
from training.recipes.ablation import VARIANTS
from training.recipes.demo import REPO, STEPS, DemoRecipe
from training.run_log import read_log

logger = logging.getLogger(__name__)

CLEAN_TARGET = 0.8  # clean success the shipped model should reach per edit type
SOURCES = "sources.json"  # beside the page's images: every number the page shows


def _lines(path: Path) -> int:
    return sum(1 for line in path.open() if line.strip()) if path.is_file() else 0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _training_loop_seconds(run: Path, stage: dict) -> float | None:
    """Seconds spent in optimizer steps, from the run's log. Unlike a step's wall time it holds across kills and
    resumes, since the log keeps one record per window of steps."""
    samples_per_step = stage.get("batch_size", 1) * stage.get("gradient_accumulation", 1)
    total, previous = 0.0, 0
    for record in read_log(run):
        total += (record["step"] - previous) * samples_per_step / record["samples_per_s"]
        previous = record["step"]
    return total or None


def _type_rows(model: dict, identity: dict) -> list[str]:
    rows = []
    groups = {**model["aggregates"]["by_edit_type"], "all": model["aggregates"]["overall"]}
    baseline = {**identity["aggregates"]["by_edit_type"], "all": identity["aggregates"]["overall"]}
    for edit_type, ours in groups.items():
        base = baseline.get(edit_type, {})
        clean = ours["clean_success"]["rate"]
        met = "yes" if clean is not None and clean >= CLEAN_TARGET else "no"
        m, b = ours["metrics"], base.get("metrics", {})
        strict = ours["strict_success"]
        rows.append(
            f"| {edit_type} | {ours['count']} | {_pct(clean)} ({ours['clean_success']['hits']}/"
            f"{ours['clean_success']['of']}) | {met} | {_pct(strict['rate'])} ({strict['hits']}/{strict['of']}) | "
            f"{_pct(ours['accuracy']['rate'])} | {_pct(base.get('clean_success', {}).get('rate'))} | "
            f"{_num(m['psnr']['mean'])} | {_num(b.get('psnr', {}).get('mean'))} | "
            f"{_num(m['psnr_outside_mask']['mean'])} | {_num(m['psnr_inside_mask']['mean'])} | "
            f"{_num(b.get('psnr_inside_mask', {}).get('mean'))} | {_num(m['temporal_flickering']['mean'], 4)} |"
        )
    return rows


def _comparison_section(runs: dict[str, dict]) -> list[str]:
    """Clean success per edit type and overall PSNR for each named evaluation, side by side."""
    types = list(next(iter(runs.values()))["aggregates"]["by_edit_type"])
    lines = [
        "| model | " + " | ".join(types) + " | all | strict, all | PSNR (dB) | PSNR outside mask (dB) |",
        "|---|" + "---|" * (len(types) + 4),
    ]
    for label, results in runs.items():
        groups = results["aggregates"]["by_edit_type"]
        overall = results["aggregates"]["overall"]
        cells = [_pct(groups.get(t, {}).get("clean_success", {}).get("rate")) for t in types]
        metrics = overall["metrics"]
        lines.append(
            f"| {label} | " + " | ".join(cells) + f" | {_pct(overall['clean_success']['rate'])} | "
            f"{_pct(overall.get('strict_success', {}).get('rate'))} | {_num(metrics['psnr']['mean'])} | "
            f"{_num(metrics['psnr_outside_mask']['mean'])} |"
        )
    return [*lines, ""]


def _ablation_section(ablation: dict | None, pages: list[str] | None = None) -> list[str]:
    if ablation is None:
        text = "No ablation ran under this recipe's root (`python -m training.recipes.ablation` runs one)."
        if pages:  # ablations are studies of their own, each at its own root and budget: point at those written
            text += " Those run at other roots and budgets: " + ", ".join(f"[{page}]({page})" for page in pages) + "."
        return [text, ""]
    from training.recipes.ablation import summary_markdown

    summary = ablation["summary"]
    lines = [summary_markdown(summary).rstrip(), "", f"![ablation]({ablation['plot']})", ""]
    lines += ["Runs:", "", "| variant | seed | clean success | strict success | verified | PSNR (dB) |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for run in summary["runs"]:
        lines.append(
            f"| {run['variant']} | {run['seed']} | {_pct(run['clean_success'])} | "
            f"{_pct(run.get('strict_success'))} | {_pct(run['verified'])} | {_num(run['psnr'])} |"
        )
    found = ablation["evaluations"]
    if not found:
        return [*lines, ""]
    edits = next(iter(found.values()))["aggregates"]["overall"]["clean_success"]["of"]
    lines += ["", "Clean success per edit type, per run:", "", *_comparison_section(found)]
    return [*lines, *_ablation_contrasts(summary["runs"], edits, ablation.get("outcomes"))]


# The paper's questions, each as (what is asked, the variant that answers yes, the variant it is read against).
CONTRASTS = (
    ("Does stage-1 pretraining help fine-tuning?", "pretrain_sft", "sft"),
    ("Does a tenth of the editing pairs do as well as all of them?", "pretrain_sft_10pct", "pretrain_sft"),
    ("Do shared RoPE positions beat offset ones?", "pretrain_sft", "pretrain_sft_offset"),
    ("Does stage-1 pretraining alone edit?", "pretrain", "sft"),
)


def _ablation_contrasts(runs: list[dict], edits: int, outcomes: dict[str, dict] | None = None) -> list[str]:
    """Each of the paper's questions answered with the two variants' means, and how large a gap chance makes.

    Each pair of variants is compared over the seeds both have run, so a second seed that has reached one variant
    but not the other does not tilt the comparison. With each run's per-edit `outcomes` (keyed `variant-seedN`), the
    gaps carry their paired standard error and one gap per seed; without them (an older record), one unpaired error
    for the page."""
    by_variant: dict[str, dict[int, dict]] = {}
    for run in runs:
        by_variant.setdefault(run["variant"], {})[run["seed"]] = run

    rows, means, seed_counts, paired_edits = [], [], set(), set()
    for question, yes, against in CONTRASTS:
        seeds = sorted(set(by_variant.get(yes, {})) & set(by_variant.get(against, {})))
        if not seeds:
            continue
        names = [f"{variant}-seed{s}" for variant in (yes, against) for s in seeds]
        paired = outcomes is not None and all(name in outcomes for name in names)
        cells, per_seed = [], "-"
        for key in ("clean_success", "strict_success"):
            a = [by_variant[yes][s][key] for s in seeds if by_variant[yes][s].get(key) is not None]
            b = [by_variant[against][s][key] for s in seeds if by_variant[against][s].get(key) is not None]
            if len(a) != len(seeds) or len(b) != len(seeds):
                cells.append("-")
                continue
            a_mean, b_mean = statistics.fmean(a), statistics.fmean(b)
            if key == "clean_success":
                means += [a_mean, b_mean]
            gap = f"{100 * (a_mean - b_mean):+.1f}"
            if paired:
                found = paired_gap([outcomes[f"{yes}-seed{s}"][key] for s in seeds],
                                   [outcomes[f"{against}-seed{s}"][key] for s in seeds])  # fmt: skip
                if found is not None:
                    gap = f"{100 * found.gap:+.1f} ± {100 * found.standard_error:.1f}"
                    paired_edits.add(found.edits)
                    if key == "clean_success":
                        per_seed = ", ".join(f"{100 * g:+.1f}" for g in found.seed_gaps)
            cells.append(f"{100 * a_mean:.1f}% vs {100 * b_mean:.1f}% ({gap})")
        seed_counts.add(len(seeds))
        rows.append(f"| {question} | {yes} vs {against} | {len(seeds)} | {cells[0]} | {cells[1]} |"
                    + (f" {per_seed} |" if outcomes is not None else ""))  # fmt: skip
    if not rows:
        return []
    fewest, most = min(seed_counts), max(seed_counts)
    seeds_text = f"{fewest}-{most} seeds" if fewest != most else f"{most} seed" + ("s" if most > 1 else "")
    header = "| question | variants | seeds | clean success | strict success |"
    rule = "|---|---|---|---|---|"
    if outcomes is not None:
        header, rule = header + " clean gap per seed |", rule + "---|"
        on = " and ".join(map(str, sorted(paired_edits))) or str(edits)
        noise = (
            f"Both variants of a question edited the same {on} edits with the same noise, so each gap is read edit "
            "by edit: ± is its paired standard error, the spread of the per-edit differences (each variant's "
            "outcomes averaged over its seeds) over the square root of their number. It says how far another "
            "sample of edits would move the gap; how far a whole run moves with its training seed is not in it, "
            f"and the per-seed gaps beside it show that. With {seeds_text} per comparison, a gap under twice its "
            "error, or one whose seeds disagree in sign, is not evidence either way."
        )
    else:
        highest = max(means) if means else 0.5
        # The standard error of the difference of two rates over `edits` independent edits each, at the highest rate
        # seen (the widest here).
        error = 100 * (2 * highest * (1 - highest) / edits) ** 0.5
        noise = (
            f"The gap between two rates near {100 * highest:.0f}% over {edits} edits each has a standard error of "
            f"about {error:.1f} points from the sample of edits alone; with {seeds_text} per comparison, gaps under "
            "twice that are not evidence either way."
        )
    return [
        "The paper's questions, answered at this budget, each over the seeds both variants have run (points of "
        "difference in brackets):",
        "",
        header,
        rule,
        *rows,
        "",
        noise,
        "",
    ]


def _ablation_settings(summary: dict | None) -> str:
    """The ablation's command-line settings that made its summary, so the reproduce line is the one that ran."""
    if summary is None:
        return ""
    # A summary written before it kept its plan names the seeds and variants of its runs: all of them once it is done.
    seeds = summary.get("planned_seeds") or sorted({run["seed"] for run in summary["runs"]})
    seeds_arg = ",".join(map(str, seeds))
    settings = f" budget={summary['budget_steps']} pretrain_share={summary['pretrain_share']:g} seeds=[{seeds_arg}]"
    variants = summary.get("planned_variants") or list(dict.fromkeys(run["variant"] for run in summary["runs"]))
    if sorted(variants) != sorted(VARIANTS):
        settings += f" variants=[{','.join(variants)}]"
    overrides = summary.get("recipe_overrides")
    if overrides:
        settings += " " + shlex.quote(f"recipe_overrides={json.dumps(overrides)}")
    if summary.get("train"):
        settings += " " + shlex.quote(f"train={json.dumps(summary['train'])}")
    return settings


def _ablation_plot(summary: dict, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(summary["variants"])
    figure, axis = plt.subplots(figsize=(8, 3.5), dpi=100)
    bars = (("strict_success", "#0b2540"), ("clean_success", "#1f4e79"), ("verified", "#9bb7d4"))
    for number, (key, colour) in enumerate(bars):
        stats = [summary["variants"][v].get(key, {}) for v in variants]
        means = [100 * (stat.get("mean") or 0) for stat in stats]
        spread = [100 * (stat.get("spread") or 0) for stat in stats]
        offset = (number - 1) * 0.27
        axis.bar([i + offset for i in range(len(variants))], means, 0.27, yerr=spread, color=colour, label=key,
                 capsize=3)  # fmt: skip
    axis.set_xticks(range(len(variants)), variants, rotation=15)
    axis.set_ylabel("% of benchmark edits")
    axis.set_ylim(0, 100)
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return f"{path.parent.name}/{path.name}"


def _kept(results: dict) -> dict:
    """The part of an evaluation's results.json the page reads: its aggregates and scoring thresholds."""
    keys = ("aggregates", "clean_psnr_db", "strict_psnr_db", "strict_free_types")
    return {key: results[key] for key in keys if key in results} | {
        "precision": results.get("model", {}).get("precision")
    }


def _shown(path: Path) -> Path:
    """`path` as the reproduce commands show it: relative to the repository when inside it."""
    return path.resolve().relative_to(REPO) if path.resolve().is_relative_to(REPO) else path


def _config_arg(config_path: Path) -> str:
    """The `--config` argument the reproduce commands need: none for the recipe's own config."""
    return "" if config_path == REPO / "configs" / "recipes" / "demo.yaml" else f" --config {_shown(config_path)}"


def _gather_ablation(root: Path, plot: Path) -> dict | None:
    """The ablation's summary and each run's evaluation, with its plot drawn at `plot`; None before it has run."""
    summary_path = root / "ablation" / "summary.json"
    if not summary_path.is_file():
        return None
    summary = json.loads(summary_path.read_text())
    evaluations, outcomes = {}, {}
    for run in summary["runs"]:
        found = root / "ablation" / "eval" / f"{run['variant']}-seed{run['seed']}" / "results.json"
        if found.is_file():
            results = json.loads(found.read_text())
            evaluations[f"{run['variant']}, seed {run['seed']}"] = _kept(results)
            # Per edit, so the paper's questions can be read edit by edit (paired) rather than rate against rate.
            outcomes[f"{run['variant']}-seed{run['seed']}"] = sample_outcomes(results)
    return {"summary": summary, "evaluations": evaluations, "outcomes": outcomes,
            "plot": _ablation_plot(summary, plot)}  # fmt: skip


def gather(
    recipe: DemoRecipe,
    images: Path,
    config_path: Path,
    compare: dict[str, Path] | None = None,
    reproduce: list[str] | None = None,
    overrides: list[str] | None = None,
) -> dict:
    """Read what the recipe and the ablation wrote under `recipe.root` and copy the page's images into `images`:
    every number the page shows, as one JSON-able record (see `render`)."""
    root = Path(recipe.root)
    model = json.loads((root / "eval" / "demo" / "results.json").read_text())
    identity = json.loads((root / "eval" / "identity" / "results.json").read_text())
    timing_path = root / "eval" / "timing.json"
    images.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "eval" / "demo" / "plots" / "by_edit_type.png", images / "by_edit_type.png")

    # One strip per edit type: the first benchmark sample of each.
    strips = {}
    for sample in model["samples"]:
        if sample["edit_type"] not in strips and sample.get("strip"):
            source = root / "eval" / "demo" / sample["strip"]
            if source.is_file():
                shutil.copy(source, images / f"strip-{sample['edit_type']}.png")
                strips[sample["edit_type"]] = sample["instruction"]
    # The clearest case of the two checks disagreeing: the passing edit whose edit region is furthest from the truth.
    worst = min(
        (s for s in model["samples"] if s["clean_success"] and s.get("strict_success") is False),
        key=lambda s: s["metrics"]["psnr_inside_mask"],
        default=None,
    )
    lenient = None
    if worst is not None and (root / "eval" / "demo" / worst["strip"]).is_file():
        shutil.copy(root / "eval" / "demo" / worst["strip"], images / "strip-clean-not-strict.png")
        lenient = {"instruction": worst["instruction"], "reason": worst["verifier"]["reason"],
                   "psnr_inside_mask": worst["metrics"]["psnr_inside_mask"]}  # fmt: skip

    ablation = _gather_ablation(root, images / "ablation.png")
    shown_config = _shown(config_path)
    compare_args = "".join(
        f" --compare {shlex.quote(f'{label}={folder}')}" for label, folder in (compare or {}).items()
    )
    compare_args += "".join(f" --reproduce {shlex.quote(command)}" for command in reproduce or [])
    done = {n: root / "done" / f"{n}.json" for n in STEPS}
    loops = {stage: _training_loop_seconds(root / "runs" / stage, getattr(recipe, stage))
             for stage in ("pretrain", "finetune")}  # fmt: skip
    return {
        "data": {
            "raw_videos": recipe.raw_videos,
            "raw_seconds": recipe.raw_seconds,
            "stage1_pairs": _lines(root / "stage1" / "manifest.jsonl"),
            "stage2_pairs": _lines(root / "stage2" / "manifest.jsonl"),
            "benchmark_edits": _lines(root / "benchmark" / "manifest.jsonl"),
            "benchmark_seed": recipe.benchmark_seed,
        },
        "model": _kept(model),
        "identity": _kept(identity),
        "strips": strips,
        "lenient": lenient,
        "compare": {
            label: _kept(json.loads((Path(f) / "results.json").read_text())) for label, f in (compare or {}).items()
        },
        "timing": json.loads(timing_path.read_text()) if timing_path.is_file() else None,
        "step_seconds": {n: json.loads(path.read_text())["seconds"] for n, path in done.items() if path.is_file()},
        "loop_seconds": loops,
        "ablation": ablation,
        "ablation_pages": sorted(page.name for page in images.parent.glob("ABLATION-*.md")),
        "commands": {
            "config": _config_arg(config_path),
            # The recipe's settings as given: its root among them, which the page's numbers came from.
            "recipe_args": "".join(f" {shlex.quote(item)}" for item in overrides or []),
            "ablation": f"python -m training.recipes.ablation recipe={shown_config}"
            f"{_ablation_settings(ablation['summary'])}"
            if ablation
            else None,
            "reproduce": list(reproduce or []),
            "compare_args": compare_args,
        },
        "platform": platform.platform(),
    }


def render(sources: dict) -> str:
    """The Markdown page for a record made by `gather`; its images are the ones `gather` copied."""
    data, model, identity, commands = sources["data"], sources["model"], sources["identity"], sources["commands"]
    lines = [
        "# Results: the demo model on the procedural world",
        "",
        "Everything below is written by `python -m training.recipes.results` from the files the recipe and the "
        "ablation wrote; rerunning them reproduces it. The numbers it read are kept in "
        f"[results/{SOURCES}](results/{SOURCES}), from which `python -m training.recipes.results --rewrite` writes "
        "this page again without the recipe's files.",
        "",
        "## Data",
        "",
        f"- raw videos: {data['raw_videos']} x {data['raw_seconds']:g} s",
        f"- stage-1 pairs (unpaired clips): {data['stage1_pairs']}",
        f"- stage-2 pairs (editing pairs, incl. global edits): {data['stage2_pairs']}",
        f"- held-out benchmark: {data['benchmark_edits']} edits (seed {data['benchmark_seed']}, held-out instruction "
        "templates)",
        "",
        "## The shipped model on the held-out benchmark",
        "",
        f"Clean success = the world verifier says the edit happened AND PSNR outside the edit region >= "
        f"{model['clean_psnr_db']:g} dB; the target is {CLEAN_TARGET:.0%} per edit type. The edit region is the "
        'ground truth\'s mask and, for an add, the added object wherever the edit put it: "add a red ball" leaves '
        'open where it goes (the table\'s "PSNR outside mask" is the mask alone). The identity baseline returns '
        "the source unchanged.",
        "",
        "Clean success is lenient: the verifier checks that the named change happened, not what was left in its "
        "place, so an object removed into a smear of another colour passes. Strict success also asks the edit "
        f"region to match the ground truth (PSNR inside the mask >= {model['strict_psnr_db']:g} dB) wherever the "
        "source and the instruction fix what it should look like, i.e. for every type but "
        f"{' and '.join(model['strict_free_types'])}; for those two it equals clean success. The model edited in "
        f"{model['precision'] or 'fp32'}, as the app does on this machine.",
        "",
        "| edit type | edits | clean success | >= 80% | strict success | verified | identity: clean | PSNR (dB) | "
        "identity: PSNR | PSNR outside mask | PSNR inside mask | identity: inside | flicker |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *_type_rows(model, identity),
        "",
        "![per edit type](results/by_edit_type.png)",
        "",
        "Each strip: source, edit, ground truth (rows), frames left to right.",
        "",
    ]
    for edit_type, instruction in sources["strips"].items():
        lines += [f'**{edit_type}**: "{instruction}"', "", f"![{edit_type}](results/strip-{edit_type}.png)", ""]
    lenient = sources["lenient"]
    if lenient is not None:
        lines += [
            f'Why strict success: "{lenient["instruction"]}" passes the clean check ({lenient["reason"]}) but not the '
            f"strict one (PSNR inside the mask {lenient['psnr_inside_mask']:.1f} dB):",
            "",
            "![clean but not strict](results/strip-clean-not-strict.png)",
            "",
        ]
    if sources["compare"]:
        runs = {"shipped model": model, "identity (source unchanged)": identity, **sources["compare"]}
        lines += ["## Other models on the same benchmark", "", "Clean success per edit type:", "",
                  *_comparison_section(runs)]  # fmt: skip
    lines += ["## Speed", ""]
    timing = sources["timing"]
    if timing:
        lines += [
            f"Editing a {timing['clip_seconds']:g}-second clip ({timing['frames_edited']} frames, "
            f"{timing['steps']} steps, guidance {timing['guidance_scale']:g}, "
            f"{timing.get('precision', 'fp32')}) takes "
            f"**{timing['median_seconds']:.2f} s** (median of {len(timing['runs'])}) on {timing['device']} "
            f"with {timing['threads']} threads ({timing['machine']}).",
            "",
        ]
    loops = sources["loop_seconds"]
    step_rows = [f"| {n} | {s:.0f} | {_num(loops.get(n), 0) if n in loops else ''} |"
                 for n, s in sources["step_seconds"].items()]  # fmt: skip
    lines += [
        "Recipe wall time per step (seconds, on the machine that ran it, slowed by whatever else it ran at the "
        "time). A step that was killed and resumed shows its last run only; for the training steps the time in "
        "optimizer steps, summed from the run's log over every resume, is beside it.",
        "",
        "| step | seconds | optimizer steps (from the log) |",
        "|---|---|---|",
        *step_rows,
        "",
    ]
    lines += ["## Ablation", "", *_ablation_section(sources["ablation"], sources.get("ablation_pages"))]
    config_arg, recipe_args = commands["config"], commands.get("recipe_args", "")
    lines += [
        "## Reproduce",
        "",
        "```bash",
        f"python -m training.recipes.demo{config_arg}{recipe_args}   # data, curation, training, evaluation, ship",
        *([commands["ablation"]] if commands["ablation"] else []),
        *commands["reproduce"],
        f"python -m training.recipes.results{config_arg}{recipe_args}{commands['compare_args']}",
        "```",
        "",
        f"Written on {sources['platform']}.",
        "",
    ]
    return "\n".join(lines)


def _ablation_files(output: Path) -> tuple[str, str]:
    """The names of an ablation page's plot and record in `results/`, after the page, so that several pages (one
    per budget, say) and RESULTS.md share the folder."""
    stem = output.stem.lower()
    return f"{stem}-plot.png", f"{stem}-{SOURCES}"


def gather_ablation_page(recipe: DemoRecipe, images: Path, config_path: Path, output: Path) -> dict:
    """The record of an ablation page: the ablation under `recipe.root` alone, with the commands that made it."""
    root = Path(recipe.root)
    ablation = _gather_ablation(root, images / _ablation_files(output)[0])
    if ablation is None:
        raise FileNotFoundError(
            f"no ablation at {root / 'ablation' / 'summary.json'}: run python -m training.recipes.ablation first"
        )
    summary = ablation["summary"]
    shown_config = _shown(config_path)
    config_arg = _config_arg(config_path)
    # The recipe settings the ablation ran under also tell the data step and this page where its root is.
    recipe_args = "".join(f" {shlex.quote(item)}" for item in summary.get("recipe_overrides") or [])
    return {
        "ablation": ablation,
        "benchmark_edits": _lines(root / "benchmark" / "manifest.jsonl"),
        "commands": {
            "data": f"python -m training.recipes.demo{config_arg}{recipe_args} --until cache_stage2",
            "ablation": f"python -m training.recipes.ablation recipe={shown_config}{_ablation_settings(summary)}",
            "results": f"python -m training.recipes.results{config_arg} --ablation-only --output "
            f"{_shown(output)}{recipe_args}",
        },
        "platform": platform.platform(),
    }


def render_ablation_page(sources: dict, record: str) -> str:
    """The Markdown page for a record made by `gather_ablation_page`; `record` names that record in `results/`."""
    from training.recipes.ablation import VARIANT_STAGES

    ablation, commands = sources["ablation"], sources["commands"]
    summary = ablation["summary"]
    precisions = sorted({found.get("precision") or "fp32" for found in ablation["evaluations"].values()})
    train = ", ".join(f"`{key}={json.dumps(value)}`" for key, value in (summary.get("train") or {}).items())
    variant_rows = [f"| `{v}` | {VARIANT_STAGES[v][0]} | {VARIANT_STAGES[v][1]} |" for v in summary["variants"]]
    return "\n".join(
        [
            "# Ablation: the paper's questions on the demo world",
            "",
            "Written by `python -m training.recipes.results --ablation-only` from the files the ablation wrote; "
            "rerunning the commands below reproduces it. The numbers it read are kept in "
            f"[results/{record}](results/{record}), from which adding `--rewrite` writes this page again without "
            "them.",
            "",
            "Every variant trains the demo model from the same untrained weights for the same number of optimizer "
            "steps (equal compute) on the same editing pairs (equal pair budget, except where the pair budget is the "
            f"variant), then edits the held-out benchmark ({sources['benchmark_edits']} edits):",
            "",
            "| variant | stage 1: unpaired-clip pairs | stage 2: editing pairs |",
            "|---|---|---|",
            *variant_rows,
            "",
            f"The two-stage variants spend {summary['pretrain_share']:.0%} of the steps on stage 1. Every run trains "
            "at a constant LR after warmup, with the recipe's other training settings"
            f"{' and ' + train if train else ''}, and edits in {' and '.join(precisions) or 'fp32'}.",
            "",
            *_ablation_section(ablation),
            "## Reproduce",
            "",
            "```bash",
            f"{commands['data']}   # the data and caches every run trains on",
            commands["ablation"],
            commands["results"],
            "```",
            "",
            f"Written on {sources['platform']}.",
            "",
        ]
    )


def write_ablation_page(recipe: DemoRecipe, output: Path, config_path: Path) -> Path:
    """Write the ablation alone at `output`, its plot and its record beside RESULTS.md's in `results/`."""
    images = output.parent / "results"
    record = _ablation_files(output)[1]
    sources = gather_ablation_page(recipe, images, config_path, output)
    atomic_write(images / record, lambda tmp: tmp.write_text(json.dumps(sources, indent=1) + "\n"))
    atomic_write(output, lambda tmp: tmp.write_text(render_ablation_page(sources, record)))
    logger.info("wrote %s and %s", output, images / record)
    return output


def write_results(
    recipe: DemoRecipe,
    output: Path,
    config_path: Path,
    compare: dict[str, Path] | None = None,
    reproduce: list[str] | None = None,
    overrides: list[str] | None = None,
) -> Path:
    """Write `output`, its images and the record of every number on it (`results/sources.json`, for `rewrite`);
    `compare` names other evaluation folders (label -> folder with results.json) on the same benchmark to show beside
    the shipped model, `reproduce` the commands that made them, `overrides` the recipe's settings as given."""
    images = output.parent / "results"
    sources = gather(recipe, images, config_path, compare, reproduce, overrides)
    atomic_write(images / SOURCES, lambda tmp: tmp.write_text(json.dumps(sources, indent=1) + "\n"))
    atomic_write(output, lambda tmp: tmp.write_text(render(sources)))
    logger.info("wrote %s and %s", output, images / SOURCES)
    return output


def rewrite(output: Path, ablation_only: bool = False) -> Path:
    """Write `output` again from the record `write_results` (or `write_ablation_page`) kept beside it, without the
    recipe's files."""
    record = _ablation_files(output)[1] if ablation_only else SOURCES
    sources_path = output.parent / "results" / record
    if not sources_path.is_file():
        raise FileNotFoundError(f"no results record at {sources_path}: write the page from the recipe's files first")
    sources = json.loads(sources_path.read_text())
    text = render_ablation_page(sources, record) if ablation_only else render(sources)
    atomic_write(output, lambda tmp: tmp.write_text(text))
    logger.info("wrote %s from %s", output, sources_path)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.recipes.results", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "recipes" / "demo.yaml")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "RESULTS.md")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="LABEL=FOLDER",
        help="another evaluation's output folder on the same benchmark, shown beside the model",
    )
    parser.add_argument(
        "--reproduce",
        action="append",
        default=[],
        metavar="COMMAND",
        help="a command that made a --compare evaluation, listed with the others",
    )
    parser.add_argument(
        "--rewrite",
        action="store_true",
        help=f"write the page again from the results/{SOURCES} beside --output, without the recipe's files",
    )
    parser.add_argument(
        "--ablation-only",
        action="store_true",
        help="write the ablation alone (e.g. a study at another budget) at --output, beside RESULTS.md",
    )
    parser.add_argument("overrides", nargs="*", help="the recipe's name=value settings, as given to it")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.rewrite:
            if args.compare or args.reproduce or args.overrides:
                raise ValueError("--rewrite takes only --output: the record holds everything else")
            rewrite(args.output, args.ablation_only)
            return 0
        recipe = load_config(DemoRecipe, args.config, args.overrides)
        if args.ablation_only:
            if args.compare or args.reproduce:
                raise ValueError(
                    "--ablation-only shows the ablation alone: --compare and --reproduce are RESULTS.md's"
                )
            write_ablation_page(recipe, args.output, args.config)
            return 0
        compare = {}
        for item in args.compare:
            label, sep, folder = item.rpartition("=")  # a label may name settings (name=value)
            if not sep or not (Path(folder) / "results.json").is_file():
                raise ValueError(
                    f"--compare {item!r} must be LABEL=FOLDER, a folder holding an evaluation's results.json"
                )
            compare[label] = Path(folder)
        write_results(recipe, args.output, args.config, compare, args.reproduce, args.overrides)
    except (ValueError, FileNotFoundError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
