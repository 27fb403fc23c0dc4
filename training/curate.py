"""Curate training pairs: `python -m training.curate stage1|stage2 [--config YAML] [name=value ...]`.

Examples:
    python -m training.curate stage1 input=raw_videos/ output=data/stage1 workers=2
    python -m training.curate stage2 --config configs/curation/stage2.yaml count=5000

A run resumes where a killed run stopped (same output folder), prints a summary table, and writes
`manifest.jsonl`, `manifest.ledger.json` and `report.md` into its output folder. Exit codes: 0 done, 2 bad
arguments or config, 1 anything else.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from training.config import load_config

logger = logging.getLogger("training.curate")


def _stage1(config_path: Path | None, overrides: list[str], progress: bool) -> int:
    from training.curation import stage1
    from training.curation.pipeline import run_pipeline
    from training.curation.report import write_report

    config = load_config(stage1.Stage1Config, config_path, overrides)
    if config.input is None:
        raise ValueError("stage1 needs input=FOLDER of raw videos")
    units = stage1.find_videos(config.input)
    if not units:
        logger.warning("no videos found in %s", config.input)
    started = time.perf_counter()
    result = run_pipeline(
        units, stage1.STAGES, stage1.GLOBAL_STAGES,
        make_context=functools.partial(stage1.make_context, config), work_dir=config.output / "work",
        manifest=config.output / "manifest.jsonl", workers=config.workers, progress=progress,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    write_report(config.output / "report.md", "Stage 1: unpaired-clip pairs", result, seconds)
    return _summary(result, seconds)


def _stage2(config_path: Path | None, overrides: list[str], progress: bool) -> int:
    from training.curation import stage2
    from training.curation.pipeline import run_pipeline
    from training.curation.report import write_report

    config = load_config(stage2.Stage2Config, config_path, overrides)
    units = stage2.find_units(config)
    started = time.perf_counter()
    result = run_pipeline(
        units, stage2.STAGES, stage2.GLOBAL_STAGES,
        make_context=functools.partial(stage2.make_context, config), work_dir=config.output / "work",
        manifest=config.output / "manifest.jsonl", workers=config.workers, progress=progress,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    write_report(config.output / "report.md", "Stage 2: synthetic editing pairs", result, seconds)
    return _summary(result, seconds)


def _summary(result, seconds: float) -> int:
    summary = (f"{len(result.records)} pairs -> {result.manifest} ({result.units_done} units, "
               f"{result.units_resumed} resumed, {seconds:.1f} s)")  # fmt: skip
    sys.stdout.write(f"{result.ledger.table()}\n\n{summary}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.curate", description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=("stage1", "stage2"))
    parser.add_argument("--config", type=Path, help="YAML config (dataclass fields; see configs/curation/)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", help="name=value settings, e.g. workers=2 describer.kind=chat")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("bitsandbytes", "torchao", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    run = _stage1 if args.stage == "stage1" else _stage2
    try:
        return run(args.config, args.overrides, not args.no_progress)
    except (ValueError, FileNotFoundError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
