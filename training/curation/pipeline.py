"""The shape both curation stages share: named stages over records, a ledger, resumable parallel runs.

A run takes *units* (a raw video, a source clip) and passes each through the per-record stages in order, in a
worker process. A stage is a small function `fn(record, context) -> list[record]`: it returns the records it makes
(one, several, or none) or raises `Drop(reason)`. Anything else it raises drops the record too, with the error as
the reason: a bad input never stops a run and never vanishes. The ledger counts, for every stage, records in,
records passed, records out, and dropped by reason, so that `in == passed + dropped` always holds.

Each unit's result is written atomically to `work_dir/units/` as soon as it is done: a rerun (after a kill, say)
skips finished units and only does the rest. Global stages, which need every record at once (near-duplicate
removal, re-balancing), run after all units, and the manifest is written last, in unit order, so a resumed run
ends with the same manifest as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from training.atomic import atomic_write

from .manifest import validate_pair, write_jsonl

logger = logging.getLogger(__name__)


class Drop(Exception):
    """Raised by a stage to drop the record it was given; the message is the reason, counted in the ledger."""


class StageContext:
    """What stages share within a worker: config, backends (in subclasses), and notes about the current unit.

    Notes are small facts for the run's report (detected cuts, segment counts) that are not records.
    """

    def __init__(self) -> None:
        self.notes: list[dict] = []

    def note(self, stage: str, **facts: object) -> None:
        self.notes.append({"stage": stage, **facts})


@dataclass(frozen=True)
class Stage:
    """A per-record stage: `fn(record, context) -> list[record]`."""

    name: str
    version: str
    fn: Callable[[dict, object], list[dict]]


@dataclass(frozen=True)
class GlobalStage:
    """A stage over all records: `fn(records, context) -> (kept, [(record, reason), ...])`.

    `kept` may hold records the stage adds (a merge of external pairs): they are counted as its output.
    """

    name: str
    version: str
    fn: Callable[[list[dict], object], tuple[list[dict], list[tuple[dict, str]]]]


@dataclass
class StageCount:
    entered: int = 0
    passed: int = 0
    produced: int = 0
    dropped: Counter = field(default_factory=Counter)

    def add(self, other: StageCount) -> None:
        self.entered += other.entered
        self.passed += other.passed
        self.produced += other.produced
        self.dropped.update(other.dropped)

    def to_dict(self) -> dict:
        return {"in": self.entered, "passed": self.passed, "out": self.produced, "dropped": dict(self.dropped)}

    @classmethod
    def from_dict(cls, values: dict) -> StageCount:
        return cls(values["in"], values["passed"], values["out"], Counter(values["dropped"]))


class Ledger:
    """Per-stage counts, in stage order."""

    def __init__(self, stage_names: Sequence[str]) -> None:
        self.counts = {name: StageCount() for name in stage_names}

    def enter(self, stage: str) -> None:
        self.counts[stage].entered += 1

    def passed(self, stage: str, produced: int) -> None:
        self.counts[stage].passed += 1
        self.counts[stage].produced += produced

    def drop(self, stage: str, reason: str) -> None:
        self.counts[stage].dropped[reason] += 1

    def add(self, other: Ledger) -> None:
        for name, count in other.counts.items():
            self.counts.setdefault(name, StageCount()).add(count)

    def balanced(self) -> bool:
        return all(c.entered == c.passed + sum(c.dropped.values()) for c in self.counts.values())

    def to_dict(self) -> dict:
        return {name: count.to_dict() for name, count in self.counts.items()}

    @classmethod
    def from_dict(cls, values: dict) -> Ledger:
        ledger = cls([])
        ledger.counts = {name: StageCount.from_dict(count) for name, count in values.items()}
        return ledger

    def table(self) -> str:
        """A plain-text summary: one row per stage, the drop reasons beside it."""
        rows = [("stage", "in", "passed", "out", "dropped", "reasons")]
        for name, c in self.counts.items():
            reasons = ", ".join(f"{reason}: {n}" for reason, n in c.dropped.most_common())
            rows.append((name, str(c.entered), str(c.passed), str(c.produced), str(sum(c.dropped.values())), reasons))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths, strict=True)) + "  " + row[5] for row in rows
        ]
        return "\n".join(line.rstrip() for line in lines)


class ContextCache:
    """Builds a stage context once per worker process and config, so models load once, not once per unit."""

    def __init__(self, build: Callable[[object], StageContext]) -> None:
        self.build = build
        self.contexts: dict[str, StageContext] = {}

    def __call__(self, config: object) -> StageContext:
        from training.config import to_dict

        key = json.dumps(to_dict(config), sort_keys=True)
        if key not in self.contexts:
            self.contexts[key] = self.build(config)
        return self.contexts[key]


def stable_seed(*parts: object) -> int:
    """A seed from names (a run seed, a record id, a stage): the same in every process and on every rerun."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def record_rng(seed: int, record: dict, stage: str) -> random.Random:
    """A generator for one stage's choices about one record, reproducible across processes and reruns."""
    return random.Random(stable_seed(seed, record["id"], stage))


def run_stages(unit: dict, stages: Sequence[Stage], context: StageContext) -> tuple[list[dict], Ledger, list[dict]]:
    """Pass one unit through the per-record stages; every record that does not come out is counted."""
    context.notes = []
    ledger = Ledger([s.name for s in stages])
    records = [unit]
    for stage in stages:
        produced_all: list[dict] = []
        for record in records:
            ledger.enter(stage.name)
            try:
                produced = stage.fn(record, context)
            except Drop as drop:
                ledger.drop(stage.name, str(drop))
                continue
            except Exception as error:  # a broken input or backend reply must not stop the run
                logger.warning("%s dropped %s: %s: %s", stage.name, record.get("id"), type(error).__name__, error)
                ledger.drop(stage.name, f"error: {type(error).__name__}")
                continue
            if not produced:
                ledger.drop(stage.name, "no output")
                continue
            ledger.passed(stage.name, len(produced))
            for item in produced:
                item["stages"] = {**record.get("stages", {}), stage.name: stage.version}
            produced_all.extend(produced)
        records = produced_all
    return records, ledger, context.notes


def _unit_file(work_dir: Path, unit: dict) -> Path:
    digest = hashlib.sha256(unit["id"].encode()).hexdigest()[:20]
    return work_dir / "units" / f"{digest}.json"


def _write_json_atomic(path: Path, value: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(value)))


def _process(args: tuple[dict, Sequence[Stage], Callable[[], StageContext], str]) -> None:
    unit, stages, make_context, path = args
    records, ledger, notes = run_stages(unit, stages, make_context())
    _write_json_atomic(
        Path(path), {"unit": unit["id"], "records": records, "ledger": ledger.to_dict(), "notes": notes}
    )


@dataclass
class RunResult:
    records: list[dict]
    ledger: Ledger
    notes: dict[str, list[dict]]
    manifest: Path
    units_done: int
    units_resumed: int


def run_pipeline(
    units: Sequence[dict],
    stages: Sequence[Stage],
    global_stages: Sequence[GlobalStage],
    *,
    make_context: Callable[[], StageContext],
    work_dir: Path,
    manifest: Path,
    workers: int = 1,
    progress: bool = True,
) -> RunResult:
    """Run every unit through `stages` (resuming finished ones), then `global_stages`, then write `manifest`.

    `make_context` builds the stages' context (config, backends) in each worker; it must be picklable (a
    `functools.partial` of a module-level function, say) and may cache per process.
    """
    ids = [u["id"] for u in units]
    if len(set(ids)) != len(ids):
        raise ValueError("unit ids must be unique")
    work_dir.mkdir(parents=True, exist_ok=True)
    pending = [u for u in units if not _unit_file(work_dir, u).is_file()]
    resumed = len(units) - len(pending)
    if resumed:
        logger.info("resuming: %d of %d units already done", resumed, len(units))

    jobs = [(u, stages, make_context, str(_unit_file(work_dir, u))) for u in pending]
    bar = tqdm(total=len(units), initial=resumed, desc="curating", unit="unit", disable=not progress)
    if workers <= 1:
        for job in jobs:
            _process(job)
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(_process, jobs, chunksize=1):
                bar.update()
    bar.close()

    # Merge in unit order, from the files: the same manifest whether or not the run was interrupted.
    ledger = Ledger([s.name for s in stages] + [g.name for g in global_stages])
    records: list[dict] = []
    notes: dict[str, list[dict]] = {}
    for unit in units:
        result = json.loads(_unit_file(work_dir, unit).read_text())
        records.extend(result["records"])
        ledger.add(Ledger.from_dict(result["ledger"]))
        notes[unit["id"]] = result["notes"]

    context = make_context()
    for stage in global_stages:
        for _ in records:
            ledger.enter(stage.name)
        kept, dropped = stage.fn(records, context)
        # A global stage may add records (a merge); every record it was given is kept or dropped.
        given = {id(r) for r in records}
        kept_given = sum(id(r) in given for r in kept)
        if kept_given + len(dropped) != len(records):
            counts = f"{len(records)} in, {kept_given} kept + {len(dropped)} dropped"
            raise RuntimeError(f"global stage {stage.name} lost records: {counts}")
        for record in kept:
            record["stages"] = {**record.get("stages", {}), stage.name: stage.version}
        for _ in range(kept_given):
            ledger.passed(stage.name, 1)
        ledger.counts[stage.name].produced = len(kept)
        for _, reason in dropped:
            ledger.drop(stage.name, reason)
        records = kept

    records = [validate_pair(r) for r in records]
    write_jsonl(manifest, records)
    _write_json_atomic(manifest.with_suffix(".ledger.json"), ledger.to_dict())
    return RunResult(records, ledger, notes, manifest, len(units), resumed)
