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


def config_class(stage: str) -> type:
    """The config dataclass of curation stage `stage` ("stage1" or "stage2")."""
    from training.curation import stage1, stage2

    return {"stage1": stage1.Stage1Config, "stage2": stage2.Stage2Config}[stage]


def curate(stage: str, config, progress: bool = False):
    """Run curation stage `stage` with `config` (resuming a killed run); returns the pipeline's result."""
    from training.curation import stage1, stage2
    from training.curation.pipeline import run_pipeline
    from training.curation.report import write_report

    module, title = {
        "stage1": (stage1, "Stage 1: unpaired-clip pairs"),
        "stage2": (stage2, "Stage 2: synthetic editing pairs"),
    }[stage]
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
    logger.info("%d pairs -> %s in %.0f s", len(result.records), result.manifest, seconds)
    return result, seconds


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
        config = load_config(config_class(args.stage), args.config, args.overrides)
        return _summary(*curate(args.stage, config, not args.no_progress))
    except (ValueError, FileNotFoundError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
