"""What an evaluation run shows: a Markdown table, an HTML report, per-sample frame strips and plots.

Everything is rendered from the `results.json` data alone (plus the strips written while scoring), so a report can
be rebuilt without running anything again. Images and videos are referenced relative to the output folder.
"""

from __future__ import annotations

import html
import logging
import math
from pathlib import Path

import cv2
import numpy as np

from training.atomic import atomic_write
from training.curation.backends.base import sample_frames

from .scoring import METRIC_INFO

logger = logging.getLogger(__name__)

STRIP_ROW_HEIGHT = 128  # small frames are enlarged (nearest neighbour) and large ones shrunk to about this
STRIP_LABEL_WIDTH = 120
STRIP_GAP = 4
# Columns of the summary tables, in order; those no sample has are left out.
TABLE_METRICS = (
    "judge_total",
    "psnr",
    "psnr_outside_mask",
    "psnr_outside_edit",
    "psnr_inside_mask",
    "ssim",
    "ssim_outside_mask",
    "temporal_flickering",
    "subject_consistency_proxy",
    "motion_smoothness_proxy",
    "clip_text_alignment",
)
RATES = {"accuracy": "Verified", "clean_success": "Clean success", "strict_success": "Strict success"}
HEADLINE = (
    "accuracy",
    "clean_success",
    "strict_success",
    "judge_total",
    "psnr_outside_mask",
    "psnr",
    "temporal_flickering",
)
SAMPLE_METRICS = (*TABLE_METRICS, "judge_prompt_following", "judge_edit_quality", "judge_background_consistency")


# Frame strips -------------------------------------------------------------------------------------------------------


def _row_frames(frames: np.ndarray, count: int) -> np.ndarray:
    shown = sample_frames(frames, count)
    height = shown.shape[1]
    if height < STRIP_ROW_HEIGHT:
        factor = max(1, STRIP_ROW_HEIGHT // height)
        return shown.repeat(factor, axis=1).repeat(factor, axis=2)
    if height > STRIP_ROW_HEIGHT * 5 // 4:
        width = round(shown.shape[2] * STRIP_ROW_HEIGHT / height)
        return np.stack([cv2.resize(f, (width, STRIP_ROW_HEIGHT), interpolation=cv2.INTER_AREA) for f in shown])
    return shown


def write_strip(path: Path, rows: list[tuple[str, np.ndarray]], count: int) -> Path:
    """A PNG of `count` evenly spaced frames per row (e.g. source, edit, ground truth), each row labelled."""
    lines = []
    for label, frames in rows:
        shown = _row_frames(frames, count)
        h, w = shown.shape[1:3]
        line = np.full((h, STRIP_LABEL_WIDTH + len(shown) * (w + STRIP_GAP), 3), 255, np.uint8)
        cv2.putText(line, label, (6, h // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for i, frame in enumerate(shown):
            left = STRIP_LABEL_WIDTH + i * (w + STRIP_GAP)
            line[:, left : left + w] = frame
        lines.append(line)
    width = max(line.shape[1] for line in lines)
    gap = np.full((STRIP_GAP, width, 3), 255, np.uint8)
    padded = [np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0)), constant_values=255) for line in lines]
    image = np.concatenate([part for line in padded for part in (line, gap)][:-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


# Formatting ---------------------------------------------------------------------------------------------------------


def _number(key: str, value: float | None) -> str:
    if value is None:
        return "–"
    if key.startswith("psnr"):
        return f"{value:.2f}"
    if key.startswith("judge"):
        return f"{value:.2f}" if not float(value).is_integer() else f"{int(value)}"
    return f"{value:.4f}"


def _rate(rate: dict) -> str:
    return "–" if rate["rate"] is None else f"{rate['rate']:.1%} ({rate['hits']}/{rate['of']})"


def _columns(results: dict) -> list[str]:
    present = results["aggregates"]["overall"]["metrics"]
    return [key for key in TABLE_METRICS if present.get(key, {}).get("n")]


def _has_rate(results: dict, name: str) -> bool:
    # Results written before a rate existed do not hold it.
    return results["aggregates"]["overall"].get(name, {}).get("of", 0) > 0


def summary_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """The summary table as header and rows of text: one row per edit type, then one for all samples."""
    columns = _columns(results)
    header = ["edit type", "samples"]
    header += ["verified"] if _has_rate(results, "accuracy") else []
    header += ["clean success"] if _has_rate(results, "clean_success") else []
    header += ["strict success"] if _has_rate(results, "strict_success") else []
    header += [METRIC_INFO[key].label for key in columns]
    groups = [*results["aggregates"]["by_edit_type"].items(), ("all", results["aggregates"]["overall"])]
    rows = []
    for name, summary in groups:
        row = [name, str(summary["count"])]
        row += [_rate(summary["accuracy"])] if _has_rate(results, "accuracy") else []
        row += [_rate(summary["clean_success"])] if _has_rate(results, "clean_success") else []
        row += [_rate(summary["strict_success"])] if _has_rate(results, "strict_success") else []
        row += [_number(key, summary["metrics"].get(key, {}).get("mean")) for key in columns]
        rows.append(row)
    return header, rows


def _headline(summary: dict, key: str) -> str:
    if key in RATES:
        rate = summary.get(key, {}).get("rate")
        return "–" if rate is None else f"{rate:.1%}"
    return _number(key, summary["metrics"].get(key, {}).get("mean"))


def comparison_rows(results: dict) -> tuple[list[str], list[list[str]]] | None:
    """Headline numbers of this run beside the baseline's, "this / baseline", per edit type and for all samples."""
    baseline = results.get("baseline")
    if baseline is None:
        return None
    present = set(_columns(results)) | {key for key in RATES if _has_rate(results, key)}
    keys = [key for key in HEADLINE if key in present]
    header = ["edit type"] + [f"{RATES.get(key) or METRIC_INFO[key].label}: this / baseline" for key in keys]
    theirs = {**baseline["aggregates"]["by_edit_type"], "all": baseline["aggregates"]["overall"]}
    groups = [*results["aggregates"]["by_edit_type"].items(), ("all", results["aggregates"]["overall"])]
    rows = []
    for name, summary in groups:
        other = theirs.get(name)
        rows.append([name] + [f"{_headline(summary, k)} / {_headline(other, k) if other else '–'}" for k in keys])
    return header, rows


def legend(results: dict) -> list[str]:
    """One line per note a reader needs: what each number is, what is a proxy, what could not be computed."""
    notes = []
    if results["model"]["kind"] == "identity":
        notes.append(
            "Model: the identity baseline returns every source unchanged. Its scores are what doing nothing earns; "
            "a model is only better where it beats them."
        )
    baseline = results.get("baseline")
    if baseline is not None:
        other = (
            "" if baseline["benchmark"] == results["benchmark"] else f" on another benchmark ({baseline['benchmark']})"
        )
        notes.append(f"Baseline: {baseline['name']}, from {baseline['path']}{other}.")
    present = results["aggregates"]["overall"]["metrics"]
    for key, info in results["metrics"].items():
        if present.get(key, {}).get("n"):
            notes.append(f"{info['label']}: {info['reference']}." + (" A proxy, not the reference metric." if
                                                                      info["proxy"] else ""))  # fmt: skip
    notes.append(
        f"PSNR is capped at {results['psnr_cap_db']:g} dB: identical clips have an infinite PSNR "
        f"(training.metrics.psnr returns inf), reported as {results['psnr_cap_db']:g}."
    )
    if _has_rate(results, "accuracy"):
        notes.append(
            "Verified: the procedural world's verifier finds the requested change in the edit and nothing else "
            "changed; instructions it cannot parse get no verdict and are not counted."
        )
    if _has_rate(results, "clean_success"):
        notes.append(
            f"Clean success: verified and PSNR against the ground truth outside the edit mask (the whole clip when "
            f"a record has no mask) of at least {results['clean_psnr_db']:g} dB."
        )
    if _has_rate(results, "strict_success"):
        free = ", ".join(results["strict_free_types"]) or "none"
        notes.append(
            f"Strict success: clean, and PSNR against the ground truth inside the edit mask of at least "
            f"{results['strict_psnr_db']:g} dB, since the verifier alone passes an object removed into a smear. "
            f"Not applied to edit types whose ground truth there is one of many right answers ({free}): for them "
            "strict success is clean success."
        )
    for key, reason in results["unavailable"].items():
        label = METRIC_INFO[key].label if key in METRIC_INFO else key
        notes.append(f"{label}: not computed, {reason}.")
    if results["counts"]["judge_failures"]:
        notes.append(f"Judge: {results['counts']['judge_failures']} replies could not be used (null scores).")
    return notes


def _counts_line(results: dict) -> str:
    counts = results["counts"]
    dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(counts["dropped"].items())) or "none"
    return (f"{counts['scored']} of {counts['records']} samples scored ({counts['resumed']} from an earlier run); "
            f"dropped: {dropped}.")  # fmt: skip


def _model_line(results: dict) -> str:
    model, g = results["model"], results["geometry"]
    line = f"Model: {model['name']}. Clips: {g['frames']} frames at {g['fps']:g} fps, {g['width']}x{g['height']}."
    sampling = model.get("sampling")
    if sampling:  # a model that generated its edits: the same weights score differently with other settings
        steps = f"{sampling['steps']} step" + ("s" if sampling["steps"] != 1 else "")
        guidance, seed = sampling["guidance"], sampling["seed"]
        line += f" Sampling: {steps}, guidance {guidance:g}, seed {seed}, {model['precision']}."
    return line


# Markdown -----------------------------------------------------------------------------------------------------------


def render_markdown(results: dict) -> str:
    header, rows = summary_rows(results)
    lines = [f"# Evaluation: {results['model']['name']}", "", _model_line(results), "", _counts_line(results), ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    comparison = comparison_rows(results)
    if comparison is not None:
        lines += ["", f"## Against the baseline: {results['baseline']['name']}", ""]
        lines += ["| " + " | ".join(comparison[0]) + " |", "|" + "---|" * len(comparison[0])]
        lines += ["| " + " | ".join(row) + " |" for row in comparison[1]]
    lines += ["", "## Legend", ""] + [f"- {note}" for note in legend(results)]
    if results["dropped"]:
        lines += ["", "## Dropped", "", "| id | reason | detail |", "|---|---|---|"]
        lines += [f"| {d['id']} | {d['reason']} | {d['detail'].replace('|', '/')} |" for d in results["dropped"]]
    return "\n".join(lines) + "\n"


# Plots --------------------------------------------------------------------------------------------------------------


def _figure(panels: int):
    from matplotlib.figure import Figure  # the Agg canvas, with no pyplot state or display backend

    figure = Figure(figsize=(4.2 * panels, 3.4), layout="constrained")
    return figure, figure.subplots(1, panels, squeeze=False)[0]


def _group_values(groups: dict, names: list[str], key: str) -> list[float | None]:
    if key == "accuracy":
        return [None if n not in groups else _percent(groups[n]["accuracy"]["rate"]) for n in names]
    return [groups[n]["metrics"].get(key, {}).get("mean") if n in groups else None for n in names]


def _percent(rate: float | None) -> float | None:
    return None if rate is None else 100 * rate


def plot_by_edit_type(results: dict, path: Path) -> Path | None:
    """Bars per edit type: verified rate, mean judge total, mean PSNR, the baseline's beside them in grey; panels
    without data are left out."""
    names = list(results["aggregates"]["by_edit_type"])
    baseline = results.get("baseline")
    panels = []
    for key, title, limits in (
        ("accuracy", "Verified (%)", (0, 100)),
        ("judge_total", None, (0, 9)),
        ("psnr", None, None),
    ):
        ours = _group_values(results["aggregates"]["by_edit_type"], names, key)
        if any(v is not None for v in ours):
            theirs = None if baseline is None else _group_values(baseline["aggregates"]["by_edit_type"], names, key)
            panels.append((title or METRIC_INFO[key].label, ours, theirs, limits))
    if not panels:
        return None
    figure, axes = _figure(len(panels))
    positions = np.arange(len(names))
    width = 0.8 if baseline is None else 0.4
    for ax, (title, ours, theirs, limits) in zip(axes, panels, strict=True):
        ax.bar(positions, [v or 0.0 for v in ours], width, color="#4c72b0", label="this run")
        if theirs is not None:
            ax.bar(positions + width, [v or 0.0 for v in theirs], width, color="#aaaaaa", label=baseline["name"])
            ax.legend(fontsize=8)
        ax.set_xticks(positions + (0 if theirs is None else width / 2), names, rotation=30)
        ax.set_title(title)
        if limits:
            ax.set_ylim(*limits)
    figure.savefig(path, dpi=100)
    return path


def plot_distributions(results: dict, path: Path) -> Path | None:
    """Histograms over all samples of flickering and PSNR."""
    from matplotlib.ticker import MaxNLocator

    panels = []
    for key in ("temporal_flickering", "psnr", "psnr_outside_mask"):
        values = [s["metrics"][key] for s in results["samples"] if s["metrics"].get(key) is not None]
        if values:
            panels.append((key, values))
    if not panels:
        return None
    figure, axes = _figure(len(panels))
    for ax, (key, values) in zip(axes, panels, strict=True):
        ax.hist(values, bins=min(20, max(5, int(math.sqrt(len(values))) * 2)), color="#55a868")
        ax.set_title(f"{METRIC_INFO[key].label}, {len(values)} samples")
        ax.set_ylabel("samples")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if key.startswith("psnr") and max(values) >= results["psnr_cap_db"]:
            ax.axvline(results["psnr_cap_db"], color="#c44e52", linestyle="--", label="cap (identical)")
            ax.legend()
    figure.savefig(path, dpi=100)
    return path


# HTML ---------------------------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 12px 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
td { white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
table.summary tr:last-child td { font-weight: bold; }
.sample { border: 1px solid #ddd; border-radius: 6px; padding: 10px; margin: 14px 0; }
.sample img { max-width: 100%; image-rendering: pixelated; }
.sample table { font-size: 13px; }
.ok { color: #1a7f37; } .fail { color: #b3261e; } .muted { color: #777; }
.plots img { max-width: 100%; margin: 8px 0; display: block; }
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[str]], css: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><tr>{head}</tr>{body}</table>'


def _verdict_html(sample: dict) -> str:
    verifier = sample.get("verifier")
    if verifier is None:
        return ""
    followed = verifier["followed"]
    word, css = {True: ("verified", "ok"), False: ("not verified", "fail"), None: ("no verdict", "muted")}[followed]
    clean = sample.get("clean_success")
    clean_text = "" if clean is None else f"; clean success: {'yes' if clean else 'no'}"
    strict = sample.get("strict_success")
    clean_text += "" if strict is None else f"; strict success: {'yes' if strict else 'no'}"
    return f'<p><b class="{css}">{word}</b>{_e(clean_text)} <span class="muted">({_e(verifier["reason"])})</span></p>'


def _sample_html(sample: dict, output: Path) -> str:
    rows = [[METRIC_INFO[k].label, _number(k, sample["metrics"][k])] for k in SAMPLE_METRICS if k in sample["metrics"]]
    strip = (
        f'<img src="{_e(sample["strip"])}" alt="frames of {_e(sample["id"])}">'
        if (output / sample["strip"]).is_file()
        else '<p class="muted">strip missing</p>'
    )
    judge = f'<p class="fail">judge failed: {_e(sample["judge_error"])}</p>' if sample.get("judge_error") else ""
    return (
        f'<div class="sample" id="{_e(sample["name"])}"><h3>{_e(sample["id"])}</h3>'
        f'<p><b>{_e(sample["instruction"])}</b> <span class="muted">edit type: {_e(sample["edit_type"])}</span> '
        f'<a href="{_e(sample["edit"])}">edit video</a></p>{strip}{_verdict_html(sample)}{judge}'
        f"{_table(['score', 'value'], rows)}</div>"
    )


def render_html(results: dict, output: Path, plots: list[str]) -> str:
    header, rows = summary_rows(results)
    title = f"Evaluation: {results['model']['name']}"
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{_CSS}</style></head>",
        f"<body><h1>{_e(title)}</h1><p>{_e(_model_line(results))}</p><p>{_e(_counts_line(results))}</p>",
        "<h2>Per edit type</h2>",
        _table(header, rows, "summary"),
    ]
    comparison = comparison_rows(results)
    if comparison is not None:
        parts += [f"<h2>Against the baseline: {_e(results['baseline']['name'])}</h2>", _table(*comparison, "summary")]
    parts += [
        "<h2>Legend</h2><ul>" + "".join(f"<li>{_e(note)}</li>" for note in legend(results)) + "</ul>",
    ]
    if plots:
        parts.append('<h2>Plots</h2><div class="plots">')
        parts += [f'<img src="{_e(plot)}" alt="{_e(Path(plot).stem)}">' for plot in plots]
        parts.append("</div>")
    if results["dropped"]:
        parts.append("<h2>Dropped</h2>")
        dropped = [[d["id"], d["reason"], d["detail"]] for d in results["dropped"]]
        parts.append(_table(["id", "reason", "detail"], dropped))
    parts.append(f"<h2>Samples ({len(results['samples'])})</h2>")
    parts += [_sample_html(sample, output) for sample in results["samples"]]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_text(path: Path, text: str) -> Path:
    """Through a temporary file renamed over `path`: a killed run never leaves half a file behind."""
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


def write_reports(results: dict, output: Path) -> list[Path]:
    """`results.md`, `report.html` and the plots they show, into `output`; returns the files written."""
    (output / "plots").mkdir(parents=True, exist_ok=True)
    plots = [
        plot(results, output / "plots" / name)
        for plot, name in ((plot_by_edit_type, "by_edit_type.png"), (plot_distributions, "distributions.png"))
    ]
    relative = [str(p.relative_to(output)) for p in plots if p is not None]
    write_text(output / "results.md", render_markdown(results))
    write_text(output / "report.html", render_html(results, output, relative))
    return [output / "results.md", output / "report.html", *(p for p in plots if p is not None)]
