"""Seconds from request to answer for edits of the example clips, through a running app's API (`/edit`).

This is what a user waits for: upload, decode and conform the clip, encode the instruction, denoise, decode, and
write the edit and the side-by-side as mp4. Start the app first (`python app.py`), then run from the repository
root: `python benchmarks/app_edit_latency.py [--url http://127.0.0.1:7860/] [--repeats 5]`.

Each example of `assets/examples/demo/manifest.jsonl` (one per edit type) is edited `--repeats` times after one
untimed warm-up edit; the table shows each example's median and the median over every timed edit.
"""

from __future__ import annotations

import argparse
import json
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
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    records = [json.loads(line) for line in args.manifest.read_text().splitlines() if line.strip()]
    client = Client(args.url, verbose=False)

    def edit(record: dict) -> float:
        video = handle_file(str(REPO_ROOT / record["source"]["path"]))
        began = time.perf_counter()
        client.predict(video, record["instruction"], api_name="/edit")
        return time.perf_counter() - began

    edit(records[0])  # warm-up: first-call allocations and caches
    rows, every = [], []
    for record in records:
        times = [edit(record) for _ in range(args.repeats)]
        every += times
        rows.append((record["edit_type"], record["instruction"], statistics.median(times), min(times), max(times)))
    print(f"{'edit type':<11} {'median s':>8} {'min s':>6} {'max s':>6}  instruction")
    for edit_type, instruction, median, low, high in rows:
        print(f"{edit_type:<11} {median:8.2f} {low:6.2f} {high:6.2f}  {instruction}")
    print(f"{'all':<11} {statistics.median(every):8.2f} {min(every):6.2f} {max(every):6.2f}  ({len(every)} edits)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
