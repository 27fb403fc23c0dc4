"""Two models' benchmark results read edit by edit: which passes more, per edit type, and by how much beyond chance.

`python -m training.evaluation.compare --first RESULTS [RESULTS ...] --second RESULTS [RESULTS ...]
[--names NAME NAME] [--output comparison.md]`

Each RESULTS is the `results.json` of `training.evaluate` (or the folder holding it). Several per side are several
training seeds of one model, seed `i` of one side read against seed `i` of the other. Both sides must have edited
the same benchmark: every edit id the two share must carry the same instruction and edit type, or the comparison is
refused. Sampling settings that differ (steps, guidance, seed, precision) are allowed, since comparing them is a use
of this tool, and are listed under the table.

Each gap is paired (`training.evaluation.paired`): ± is the standard error of the per-edit difference, so a gap under
twice it is not evidence either way.

Exit codes: 0 done, 2 bad arguments or input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from training.atomic import atomic_write
from training.evaluation.paired import CHECKS, Outcomes, paired_gap, sample_outcomes

logger = logging.getLogger(__name__)

SETTINGS = ("steps", "guidance", "embedded_guidance", "negative_prompt", "seed")


@dataclass(frozen=True)
class Scored:
    """One evaluation's per-edit verdicts, as the comparison needs them."""

    path: Path
    edit_types: dict[str, str]  # edit id -> edit type
    instructions: dict[str, str]  # edit id -> instruction
    outcomes: dict[str, Outcomes]  # check -> edit id -> success (None where the edit has no verdict)
    sampling: dict[str, object]  # the model's sampling settings and precision, for the notes under the table


def load_results(path: Path) -> Scored:
    """Read one `results.json` (or the evaluation folder holding it); ValueError naming what is wrong with it."""
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise ValueError(f"no evaluation results at {path} (expected a results.json or a folder holding one)")
    try:
        results = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{file} is not valid JSON: {error}") from error
    samples = results.get("samples") if isinstance(results, dict) else None
    if not isinstance(samples, list) or not samples:
        raise ValueError(f"{file} holds no per-edit samples; rerun `python -m training.evaluate` to write them")
    edit_types, instructions = {}, {}
    for sample in samples:
        edit_id = sample.get("id")
        if edit_id is None or edit_id in edit_types:
            raise ValueError(f"{file}: sample ids must be present and unique, got {edit_id!r}")
        edit_types[edit_id] = sample.get("edit_type") or "unknown"
        instructions[edit_id] = sample.get("instruction", "")
    model = results.get("model") or {}
    sampling = dict(model.get("sampling") or {})
    sampling["precision"] = model.get("precision")
    return Scored(file, edit_types, instructions, sample_outcomes(results), sampling)


def _check_same_benchmark(runs: Sequence[Scored]) -> list[str]:
    """The edit ids every run scored, after refusing runs whose shared ids name different edits."""
    reference = runs[0]
    for run in runs[1:]:
        for edit_id in reference.edit_types.keys() & run.edit_types.keys():
            if (run.edit_types[edit_id], run.instructions[edit_id]) != (
                reference.edit_types[edit_id],
                reference.instructions[edit_id],
            ):
                raise ValueError(
                    f"{run.path} and {reference.path} scored different benchmarks: edit {edit_id!r} is "
                    f"{run.edit_types[edit_id]} {run.instructions[edit_id]!r} in one and "
                    f"{reference.edit_types[edit_id]} {reference.instructions[edit_id]!r} in the other"
                )
    shared = sorted(set.intersection(*(set(run.edit_types) for run in runs)))
    if len(shared) < 2:
        raise ValueError(f"the results share {len(shared)} edit ids; a paired comparison needs at least 2")
    return shared


def _count(runs: Sequence[Scored], check: str, ids: list[str]) -> str:
    """Successes over the edits with a verdict, averaged over the side's seeds."""
    hits = [sum(bool(run.outcomes[check][i]) for i in ids) for run in runs]
    judged = [sum(run.outcomes[check][i] is not None for i in ids) for run in runs]
    mean = sum(hits) / len(hits)
    shown = f"{mean:.0f}" if all(h == hits[0] for h in hits) else f"{mean:.1f}"
    return f"{shown}/{max(judged)}"


def _gap(first: Sequence[Scored], second: Sequence[Scored], check: str, ids: list[str]) -> str:
    found = paired_gap(
        [{i: run.outcomes[check][i] for i in ids} for run in first],
        [{i: run.outcomes[check][i] for i in ids} for run in second],
    )
    if found is None:
        return "-"
    # In edits rather than points, so a row's gap reads against its counts.
    edits = found.edits
    return f"{edits * found.gap:+.1f} ± {edits * found.standard_error:.1f}"


def comparison_table(first: Sequence[Scored], second: Sequence[Scored], names: tuple[str, str]) -> str:
    """A markdown table: per edit type and overall, each side's clean and strict counts and the paired gaps."""
    if not first or len(first) != len(second):
        raise ValueError(f"each side needs the same number of results (seeds), got {len(first)} and {len(second)}")
    shared = _check_same_benchmark([*first, *second])
    by_type: dict[str, list[str]] = {}
    for edit_id in shared:
        by_type.setdefault(first[0].edit_types[edit_id], []).append(edit_id)

    a, b = names
    lines = [
        f"| edit type | {a} clean | {b} clean | clean gap | {a} strict | {b} strict | strict gap |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, ids in [*sorted(by_type.items()), ("all", shared)]:
        cells = []
        for check in CHECKS:
            cells += [_count(first, check, ids), _count(second, check, ids), _gap(first, second, check, ids)]
        lines.append(f"| {'**all**' if label == 'all' else label} | " + " | ".join(cells) + " |")

    seeds = f"{len(first)} results per side, seed i against seed i; " if len(first) > 1 else ""
    lines += [
        "",
        f"Gaps are {a} minus {b}, in edits, read edit by edit over the {len(shared)} edits both scored ({seeds}± is "
        "one standard error of the paired difference).",
    ]
    for label, runs in ((a, first), (b, second)):
        for run in runs:
            settings = ", ".join(f"{key} {run.sampling.get(key)!r}" for key in (*SETTINGS, "precision"))
            lines.append(f"- {label}: `{run.path}` ({settings})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluation.compare", description=__doc__.split("\n")[0])
    parser.add_argument("--first", type=Path, nargs="+", required=True, help="results of the model read first")
    parser.add_argument("--second", type=Path, nargs="+", required=True, help="results it is read against")
    parser.add_argument("--names", nargs=2, default=("first", "second"), metavar="NAME", help="column names")
    parser.add_argument("--output", type=Path, default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        first = [load_results(path) for path in args.first]
        second = [load_results(path) for path in args.second]
        table = comparison_table(first, second, tuple(args.names))
    except ValueError as error:
        logger.error("%s", error)
        return 2
    if args.output is not None:
        atomic_write(args.output, lambda tmp: tmp.write_text(table + "\n"))
    sys.stdout.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
