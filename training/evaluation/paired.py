"""The gap between two models scored on the same edits, with the standard error that pairing them allows.

Two models edited the same benchmark with the same noise, so an edit that is hard for one is mostly hard for the other.
Reading the difference edit by edit cancels that shared difficulty: the standard error of the gap is the spread of the
per-edit differences over the square root of their number, usually well under the unpaired error of two independent
rates. Several training seeds per model are averaged per edit first; how far a whole run moves with its seed is not
in that error, so the gap of each seed is kept beside it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

Outcomes = dict[str, bool | None]  # edit id -> success; None where the edit has no verdict
CHECKS = ("clean_success", "strict_success")


def sample_outcomes(results: dict) -> dict[str, Outcomes]:
    """Each check's per-edit verdicts in an evaluation's `results.json`, keyed by check, then edit id."""
    return {check: {sample["id"]: sample.get(check) for sample in results["samples"]} for check in CHECKS}


@dataclass(frozen=True)
class PairedGap:
    gap: float  # mean success of the first model minus the second's, as a fraction
    standard_error: float  # of `gap`, over the edits both scored
    edits: int  # edits every run of both models scored
    seed_gaps: tuple[float, ...]  # the same gap, one seed at a time


def paired_gap(first: list[Outcomes], second: list[Outcomes]) -> PairedGap | None:
    """The gap between two models, each given as one outcome map per training seed, seed `i` of one against seed
    `i` of the other; None when fewer than two edits were scored by every run."""
    if not first or len(first) != len(second):
        raise ValueError(f"paired_gap needs as many seeds on each side, got {len(first)} and {len(second)}")
    runs = [*first, *second]
    ids = sorted(set.intersection(*({i for i, hit in run.items() if hit is not None} for run in runs)))
    if len(ids) < 2:
        return None

    def rate(run: Outcomes) -> float:
        return statistics.fmean(float(run[i]) for i in ids)

    differences = [
        statistics.fmean(float(run[i]) for run in first) - statistics.fmean(float(run[i]) for run in second)
        for i in ids
    ]
    return PairedGap(
        gap=statistics.fmean(differences),
        standard_error=statistics.stdev(differences) / len(ids) ** 0.5,
        edits=len(ids),
        seed_gaps=tuple(rate(a) - rate(b) for a, b in zip(first, second, strict=True)),
    )
