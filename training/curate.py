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


def _curate(stage: str, config_path: Path | None, overrides: list[str], progress: bool) -> int:
    from training.curation import stage1, stage2
    from training.curation.pipeline import run_pipeline
    from training.curation.report import write_report

    module, config_class, title = {
        "stage1": (stage1, stage1.Stage1Config, "Stage 1: unpaired-clip pairs"),
        "stage2": (stage2, stage2.Stage2Config, "Stage 2: synthetic editing pairs"),
    }[stage]
    config = load_config(config_class, config_path, overrides)
    units = module.find_units(config)
    if not units:
        logger.warning("no inputs found")
    started = time.perf_counter()
    result = run_pipeline(
        units, module.STAGES, module.GLOBAL_STAGES,
        make_context=functools.partial(module.make_context, config), work_dir=config.output / "work",
        manifest=config.output / "manifest.jsonl", workers=config.workers, progress=progress,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    write_report(config.output / "report.md", title, result, seconds)
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
    try:
        return _curate(args.stage, args.config, args.overrides, not args.no_progress)
    except (ValueError, FileNotFoundError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
