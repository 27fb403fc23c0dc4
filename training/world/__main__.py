"""The procedural world's command line.

`python -m training.world raw OUT --count N`: multi-shot raw videos (with ground truth beside each), for stage 1.
`python -m training.world pairs OUT --count N --seed S [--types ...] [--exclude manifest.jsonl ...]`: editing pairs
with ground-truth targets and masks, as a stand-in public data set (global edits) or a held-out benchmark.
`python -m training.world captions OUT --count N --seed S`: captioned clips, text-to-video data for a base model.
"""

import argparse
import logging
import sys
from pathlib import Path

from .captions import write_captioned_clips
from .edits import EDIT_TYPES
from .pairs import write_edit_pairs
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
    pairs = commands.add_parser("pairs", help="write editing pairs with ground truth (data set or benchmark)")
    pairs.add_argument("output", type=Path, help="folder for manifest.jsonl and videos/")
    pairs.add_argument("--count", type=int, required=True)
    pairs.add_argument("--seed", type=int, required=True, help="use one that no training set used for benchmarks")
    pairs.add_argument("--types", nargs="+", default=list(EDIT_TYPES), choices=EDIT_TYPES)
    pairs.add_argument("--frames", type=int, default=9)
    pairs.add_argument("--fps", type=float, default=8.0)
    pairs.add_argument("--size", type=int, default=64)
    pairs.add_argument("--exclude", type=Path, nargs="*", default=[], help="manifests whose instructions to avoid")
    pairs.add_argument("--prefix", default="pair", help="start of every pair id")
    pairs.add_argument(
        "--phrasing", choices=("all", "train", "heldout"), default="all",
        help="instruction templates: train for training sets, heldout for benchmarks",
    )  # fmt: skip
    pairs.add_argument("--playable", action="store_true", help="browser-playable H.264 instead of lossless")
    pairs.add_argument(
        "--canonical", action="store_true",
        help="fix what instructions leave open: upright replacements, new backgrounds in the old tones",
    )  # fmt: skip
    captions = commands.add_parser("captions", help="write captioned clips (text-to-video data for a base model)")
    captions.add_argument("output", type=Path, help="folder for manifest.jsonl and videos/")
    captions.add_argument("--count", type=int, required=True)
    captions.add_argument("--seed", type=int, required=True)
    captions.add_argument("--frames", type=int, default=9)
    captions.add_argument("--fps", type=float, default=8.0)
    captions.add_argument("--size", type=int, default=64)
    captions.add_argument("--style-prob", type=float, default=0.2, help="share of clips filmed in a style")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "pairs":
        write_edit_pairs(
            args.output, args.count, seed=args.seed, types=tuple(args.types), frames=args.frames, fps=args.fps,
            size=args.size, exclude=args.exclude, prefix=args.prefix, phrasing=args.phrasing,
            lossless=not args.playable, canonical=args.canonical,
        )  # fmt: skip
        return 0
    if args.command == "captions":
        write_captioned_clips(
            args.output, args.count, seed=args.seed, frames=args.frames, fps=args.fps, size=args.size,
            style_prob=args.style_prob,
        )  # fmt: skip
        return 0
    paths = write_raw_videos(args.output, args.count, args.seed, args.duration, args.fps, args.size, args.workers)
    logging.getLogger("training.world").info("%d raw videos in %s", len(paths), args.output)
    return 0


sys.exit(main())
