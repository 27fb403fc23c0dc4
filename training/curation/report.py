"""A Markdown report of a curation run: the ledger, what was found per input, and a sample of the pairs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from training.atomic import atomic_write

from .pipeline import RunResult


def _fmt_times(times: list[float], limit: int = 20) -> str:
    shown = ", ".join(f"{t:.2f}" for t in times[:limit])
    return shown + (f", ... ({len(times)} in all)" if len(times) > limit else "")


def render_report(title: str, result: RunResult, seconds: float, sample: int = 30) -> str:
    lines = [f"# {title}", ""]
    lines += [f"{len(result.records)} pairs from {result.units_done} inputs in {seconds:.1f} s "
              f"({result.units_resumed} resumed from an earlier run).", ""]  # fmt: skip
    balanced = "yes" if result.ledger.balanced() else "NO"
    lines += ["## Ledger", "", f"Every record accounted for (in = passed + dropped): {balanced}.", ""]
    lines += ["```", result.ledger.table(), "```", ""]

    types = Counter(r["edit_type"] for r in result.records)
    if types:
        lines += ["## Edit types", "", "| edit type | pairs |", "|---|---|"]
        lines += [f"| {t} | {n} |" for t, n in types.most_common()] + [""]

    per_unit = {unit: notes for unit, notes in result.notes.items() if notes}
    if per_unit:
        # Record ids start with their unit's id: "unit#segment#pair".
        pairs_of = Counter(r["id"].split("#", 1)[0] for r in result.records)
        lines += ["## Inputs", "", "| input | duration (s) | cuts (s) | pairs |", "|---|---|---|---|"]
        for unit, notes in list(per_unit.items())[:200]:
            scene = next((n for n in notes if n["stage"] == "scene_segmentation"), None)
            if scene is None:
                continue
            cuts = _fmt_times(scene["cuts"]) or "none"
            lines.append(f"| {unit} | {scene['duration']:.2f} | {cuts} | {pairs_of.get(unit, 0)} |")
        lines.append("")

    lines += [
        "## Sample pairs",
        "",
        "| id | source (s) | target (s) | edit type | instruction |",
        "|---|---|---|---|---|",
    ]
    for r in result.records[:sample]:
        s, t = r["source"], r["target"]
        lines.append(
            f"| {r['id']} | {s['start']:.2f}-{s['end']:.2f} | {t['start']:.2f}-{t['end']:.2f} | {r['edit_type']} | "
            f"{r['instruction']} |"
        )
    return "\n".join(lines) + "\n"


def write_report(path: Path, title: str, result: RunResult, seconds: float) -> Path:
    text = render_report(title, result, seconds)
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return path
