"""Stage-1 curation throughput: seconds of raw video processed per wall-clock second, with 1 and 2 workers.

Both runs process the same raw videos (procedural world videos written once, or a folder given with --input) from
scratch into fresh output folders, so the ratio between them is the parallel speed-up.

    python benchmarks/curation_stage1.py [--input FOLDER] [--videos 8] [--duration 60] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from editor.video import probe_video
from training.config import load_config
from training.curation import stage1
from training.curation.pipeline import run_pipeline
from training.world import write_raw_videos


def measure(input_dir: Path, workers: int, scratch: Path) -> tuple[float, int]:
    output = scratch / f"out-{workers}"
    config = load_config(stage1.Stage1Config, None, [f"input={input_dir}", f"output={output}", f"workers={workers}"])
    units = stage1.find_videos(input_dir)
    started = time.perf_counter()
    result = run_pipeline(
        units, stage1.STAGES, stage1.GLOBAL_STAGES, make_context=functools.partial(stage1.make_context, config),
        work_dir=output / "work", manifest=output / "manifest.jsonl", workers=workers, progress=False,
    )  # fmt: skip
    return time.perf_counter() - started, len(result.records)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, help="folder of raw videos (default: procedural world videos)")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        input_dir = args.input
        if input_dir is None:
            input_dir = scratch / "raw"
            write_raw_videos(input_dir, args.videos, seed=12345, duration=args.duration, fps=12.0, size=64, workers=2)
        videos = stage1.find_videos(input_dir)
        seconds = sum(probe_video(u["path"]).duration for u in videos)
        rows = []
        for workers in args.workers:
            wall, pairs = measure(input_dir, workers, scratch)
            rows.append((workers, seconds, wall, seconds / wall, pairs))

    base = rows[0][3]
    print(f"Stage-1 curation on {len(videos)} videos ({seconds:.0f} s of video), fresh runs, world describer.")
    print(f"{'workers':>7}  {'video s':>8}  {'wall s':>7}  {'video s / wall s':>16}  {'speed-up':>8}  {'pairs':>6}")
    for workers, video, wall, rate, pairs in rows:
        print(f"{workers:>7}  {video:>8.0f}  {wall:>7.1f}  {rate:>16.1f}  {rate / base:>8.2f}  {pairs:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
