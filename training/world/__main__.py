"""`python -m training.world raw OUT --count N`: write procedural raw videos (with ground truth beside each)."""

import argparse
import logging
import sys

from .raw_video import write_raw_videos


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m training.world", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    raw = commands.add_parser("raw", help="write multi-shot raw videos for stage-1 curation")
    raw.add_argument("output", help="folder to write raw_NNNNN.mp4 and raw_NNNNN.truth.json into")
    raw.add_argument("--count", type=int, default=10)
    raw.add_argument("--seed", type=int, default=0)
    raw.add_argument("--duration", type=float, default=60.0, help="seconds per video")
    raw.add_argument("--fps", type=float, default=12.0)
    raw.add_argument("--size", type=int, default=64, help="height and width in pixels")
    raw.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    paths = write_raw_videos(args.output, args.count, args.seed, args.duration, args.fps, args.size, args.workers)
    logging.getLogger("training.world").info("%d raw videos in %s", len(paths), args.output)
    return 0


sys.exit(main())
