"""The curated-pairs manifest: one JSON object per line, the schema every curation stage ends in.

A pair record:

| field | type | meaning |
|---|---|---|
| `id` | str | unique, stable across reruns (derived from the input and the choices made) |
| `source` | clip or null | the original clip; null for a captioned clip (text-to-video data) |
| `target` | clip | the edited (stage 2) or pseudo-edited (stage 1) clip, or the captioned clip |
| `instruction` | str | what changes from source to target, or the caption |
| `edit_type` | str or null | add, remove, replace, recolour, background, style; `change` if unknown; `text_to_video` |
| `mask` | clip or null | a mask video (white = edited region) for local edits |
| `scores` | {str: float} | filter and judge scores, e.g. `flow`, `judge_total` |
| `provenance` | {str: any} | where it came from: raw video, segment, seeds, backends |
| `stages` | {str: str} | the stages it passed, each with its version |

A clip is `{"path": str, "start": float, "end": float}`: a time range of a video file, in seconds, `end` exclusive.
Frames are read from it at the model's frame rate, so no clip is cut into files of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from editor.video import VideoError, conform_clip, read_video
from training.atomic import atomic_write

PAIR_FIELDS = ("id", "source", "target", "instruction", "edit_type", "mask", "scores", "provenance", "stages")


def clip(path: str | Path, start: float, end: float) -> dict:
    """A clip reference; rounded to the microsecond so that reruns write identical manifests."""
    return {"path": str(path), "start": round(float(start), 6), "end": round(float(end), 6)}


def check_clip_reference(value: object, name: str, record_id: str) -> None:
    """Raise ValueError unless `value` is a clip reference {path, start, end} with end > start."""
    if not isinstance(value, dict) or set(value) != {"path", "start", "end"} or not value["end"] > value["start"]:
        raise ValueError(f"record {record_id}: {name} must be a clip {{path, start, end}} with end > start: {value!r}")


def validate_pair(record: dict) -> dict:
    """Check a record against the schema above; returns it with the fields in schema order."""
    record_id = record.get("id", "?")
    missing = [f for f in PAIR_FIELDS if f not in record]
    if missing:
        raise ValueError(f"record {record_id} lacks {missing}")
    if record["source"] is not None:
        check_clip_reference(record["source"], "source", record_id)
    check_clip_reference(record["target"], "target", record_id)
    if record["mask"] is not None:
        check_clip_reference(record["mask"], "mask", record_id)
    if not isinstance(record["instruction"], str) or not record["instruction"].strip():
        raise ValueError(f"record {record_id}: instruction must be a non-empty string")
    return {f: record[f] for f in PAIR_FIELDS}


def write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    """Write records atomically: a temporary file beside `path`, renamed into place when complete."""
    path = Path(path)

    def write(tmp: Path) -> None:
        with tmp.open("w") as f:
            for record in records:
                f.write(json.dumps(record, sort_keys=False) + "\n")

    atomic_write(path, write)
    return path


def read_jsonl(path: str | Path) -> Iterator[dict]:
    with Path(path).open() as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number} is not valid JSON: {error}") from error


def read_manifest(path: str | Path) -> list[dict]:
    """Read and validate a pairs manifest."""
    return [validate_pair(record) for record in read_jsonl(path)]


class ClipTooShort(VideoError):
    """A clip reference that decodes but has fewer frames than the model needs at its frame rate."""


def read_clip(
    reference: dict, *, fps: float, frames: int, height: int, width: int, resize_mode: str = "crop"
) -> np.ndarray:
    """A clip reference as the model sees it: `frames` uint8 `[F, H, W, 3]` frames at `fps`, resized to the model's
    size. Raises `ClipTooShort` when the range holds too few frames, `VideoError` when it cannot be read."""
    clip = read_video(reference["path"], fps=fps, start=reference["start"], end=reference["end"], max_frames=frames)
    if len(clip.frames) < frames:
        raise ClipTooShort(f"{reference['path']}: {len(clip.frames)} frames at {fps:g} fps, {frames} needed")
    return conform_clip(clip.frames, num_frames=frames, height=height, width=width, resize_mode=resize_mode)
