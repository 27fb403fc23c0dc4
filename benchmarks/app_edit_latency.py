"""Seconds from request to answer for edits of the example clips, through a running app's API (`/edit`).

This is what a user waits for: upload, decode and conform the clip, encode the instruction, denoise, decode, and
write the edit and the side-by-side as mp4. Start the app first (`python app.py`), then run from the repository
root: `python benchmarks/app_edit_latency.py [--url http://127.0.0.1:7860/] [--repeats 5] [--steps N]` (`--steps` sets
the sampler's steps, as the page's Steps slider does; the model's default when left out).

Each example of `assets/examples/demo/manifest.jsonl` (one per edit type) is edited `--repeats` times after one
untimed warm-up edit. The table shows, per example and over every timed edit, the median round trip and the
median time the app reports for the edit itself (its status line: model work, without upload, file writing and
transfer), then the round trips of the session's first and last third, which should agree: an answer must not grow
with the edits made before it.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860/")
    parser.add_argument("--manifest", type=Path, default=REPO_ROOT / "assets" / "examples" / "demo" / "manifest.jsonl")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (the model's default when left out)")
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    records = [json.loads(line) for line in args.manifest.read_text().splitlines() if line.strip()]
    client = Client(args.url, verbose=False)

    def edit(record: dict) -> tuple[float, float]:
        video = handle_file(str(REPO_ROOT / record["source"]["path"]))
        began = time.perf_counter()
        settings = {} if args.steps is None else {"steps": args.steps}
        outputs = client.predict(video, record["instruction"], **settings, api_name="/edit")
        round_trip = time.perf_counter() - began
        status = next(o for o in outputs if isinstance(o, str) and o.startswith("Edited "))
        return round_trip, float(re.search(r" in ([0-9.]+) s", status).group(1))

    edit(records[0])  # warm-up: first-call allocations and caches
    rows, trips, edits = [], [], []
    for record in records:
        times = [edit(record) for _ in range(args.repeats)]
        trips += [t for t, _ in times]
        edits += [e for _, e in times]
        rows.append((record["edit_type"], record["instruction"], statistics.median(t for t, _ in times),
                     statistics.median(e for _, e in times)))  # fmt: skip
    print(f"{'edit type':<11} {'round trip s':>12} {'edit s':>7}  instruction")
    for edit_type, instruction, trip, model in rows:
        print(f"{edit_type:<11} {trip:12.2f} {model:7.2f}  {instruction}")
    print(f"{'all':<11} {statistics.median(trips):12.2f} {statistics.median(edits):7.2f}  ({len(trips)} edits)")
    # A session's answers should not grow with its history: its first and last edits should take as long.
    share = max(1, len(trips) // 3)
    print(f"round trip, median of the session's first {share} and last {share} timed edits: "
          f"{statistics.median(trips[:share]):.2f} s and {statistics.median(trips[-share:]):.2f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
