"""What an evaluation reads: benchmark records (ground truth and mask optional) and clips at the model's geometry."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from editor.video import VideoError
from training.curation.manifest import PAIR_FIELDS, ClipTooShort, check_clip_reference, read_jsonl
from training.curation.manifest import read_clip as read_clip_reference

MASK_THRESHOLD = 127  # mask videos are white where edited; compression leaves grey near the edges


@dataclass(frozen=True)
class Geometry:
    """How every clip is read: the model's frame rate, frame count and size."""

    height: int
    width: int
    frames: int
    fps: float
    resize_mode: str


class Drop(Exception):
    """A sample that cannot be evaluated; `reason` is what it is counted under."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def validate_benchmark_record(record: Any, where: str) -> dict:
    """A pair record whose source and instruction are required and target, mask and the rest optional; returned
    with every schema field present (missing optional ones as null or empty)."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: a benchmark record must be a JSON object, got {type(record).__name__}")
    record_id = record.get("id")
    if not isinstance(record_id, str) or not record_id.strip():
        raise ValueError(f"{where}: id must be a non-empty string, got {record_id!r}")
    unknown = sorted(set(record) - set(PAIR_FIELDS))
    if unknown:
        raise ValueError(f"{where}: record {record_id} has unknown fields {unknown}; known: {list(PAIR_FIELDS)}")
    if "source" not in record:
        raise ValueError(f"{where}: record {record_id} lacks a source clip")
    check_clip_reference(record["source"], "source", record_id)
    for name in ("target", "mask"):
        if record.get(name) is not None:
            check_clip_reference(record[name], name, record_id)
    instruction = record.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError(f"{where}: record {record_id}: instruction must be a non-empty string, got {instruction!r}")
    edit_type = record.get("edit_type")
    if edit_type is not None and not isinstance(edit_type, str):
        raise ValueError(f"{where}: record {record_id}: edit_type must be a string or null, got {edit_type!r}")
    empty = {"scores": {}, "provenance": {}, "stages": {}}
    return {name: record.get(name, empty.get(name)) for name in PAIR_FIELDS}


def read_benchmark(path: str | Path) -> list[dict]:
    """Every record of a benchmark manifest, validated."""
    return [validate_benchmark_record(r, f"{path}:{n}") for n, r in enumerate(read_jsonl(path), 1)]


def sample_name(record_id: str) -> str:
    """A file name for a record id: the id itself when it is safe, else a cleaned id and a hash of it."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", record_id)
    if safe == record_id and not safe.startswith("."):
        return safe
    return f"{safe.lstrip('.')}-{hashlib.sha1(record_id.encode()).hexdigest()[:8]}"


def read_clip(reference: dict, geometry: Geometry, what: str) -> np.ndarray:
    """A clip as the model sees it (as `training.cache` reads clips); a `Drop` when it cannot be used."""
    try:
        return read_clip_reference(
            reference, fps=geometry.fps, frames=geometry.frames, height=geometry.height, width=geometry.width,
            resize_mode=geometry.resize_mode,
        )  # fmt: skip
    except ClipTooShort as error:
        raise Drop(f"{what} too short", str(error)) from error
    except VideoError as error:
        raise Drop(f"{what} unreadable", str(error)) from error


def read_mask(reference: dict, geometry: Geometry) -> np.ndarray:
    """bool [F, H, W]: True where the mask video is white (edited), as curation reads masks."""
    return read_clip(reference, geometry, "mask")[..., 0] > MASK_THRESHOLD


def weights_digest(folders: list[Path | str]) -> str:
    """A SHA-256 over every safetensors file under `folders` (names and bytes): what the model's edits depend on.

    The path alone is not enough: retraining or re-exporting into the same folder must not let a resumed evaluation
    keep the old model's samples. A reference that is not a local folder (a Hugging Face Hub repository) enters by
    its name alone: its files are whatever the hub serves, so pass a local copy where the digest must cover them.
    """
    digest = hashlib.sha256()
    for reference in folders:
        folder = Path(reference).expanduser()
        if not folder.is_dir():
            digest.update(f"reference\0{reference}\0".encode())
            continue
        for file in sorted(folder.rglob("*.safetensors")):
            digest.update(f"{file.relative_to(folder).as_posix()}\0{file.stat().st_size}\0".encode())
            with file.open("rb") as stream:
                while chunk := stream.read(1 << 24):
                    digest.update(chunk)
    return digest.hexdigest()
