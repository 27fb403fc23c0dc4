"""Latent and text-embedding cache: encode a pairs manifest once, train from the cached tensors many times.

`python -m training.cache [--config YAML] manifest=data/stage1/manifest.jsonl model=models/icve output=data/cache`

Every manifest record becomes one sample: the VAE latents of its source and target clips (posterior mode, already
scaled) and its instruction's text embedding. A manifest of captioned clips (records without a source: text-to-video
data for a base model) gives samples without `source_latents`; one cache holds one kind. Samples go into
`shard-00000.safetensors`, `shard-00001...`, each holding stacked tensors for up to `shard_size` samples:

| tensor | shape | dtype |
|---|---|---|
| `source_latents` (pairs only), `target_latents` | N, C, F', H', W' | float32 |
| `text_states` | N, L, D | float32 |
| `text_mask` | N, L | int64 |
| `text_pooled` | N, Dp | float32 |

`empty_prompt.safetensors` holds the embedding of the empty instruction (for instruction dropout and classifier-free
guidance training) and `index.json` lists the shards (file, sample ids in order, sha256, count), the settings the
latents depend on, and how many records were skipped and why. Shards and the index are replaced atomically and the
index is rewritten after each shard, so a killed run keeps what it finished and a rerun encodes only what is missing.
`CachedDataset` reads it back, checking each shard's checksum before trusting it.

Exit codes: 0 done, 2 bad arguments, config or input.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset

from editor.video import VideoError
from training.atomic import atomic_write
from training.config import load_config
from training.curation.manifest import ClipTooShort, read_clip, read_manifest

logger = logging.getLogger(__name__)

INDEX_NAME = "index.json"
EMPTY_PROMPT_NAME = "empty_prompt.safetensors"
INDEX_VERSION = 1
SAMPLE_KEYS = ("source_latents", "target_latents", "text_states", "text_mask", "text_pooled")
TEXT_KEYS = ("text_states", "text_mask", "text_pooled")


class CacheError(ValueError):
    """A cache on disk that cannot be used as it is (corrupt shard, missing file, unreadable index)."""


@dataclass
class CacheConfig:
    """What to encode, with which model, into which folder."""

    manifest: Path | None = None
    model: Path | None = None  # a VideoEditPipeline folder (save_pretrained layout)
    output: Path = Path("data/cache")
    frames: int = 9
    fps: float = 8.0
    height: int = 64
    width: int = 64
    shard_size: int = 256  # samples per shard
    batch_size: int = 8  # instructions per text-encoder call
    device: str | None = None  # cuda when available, else cpu

    def settings(self) -> dict[str, Any]:
        """What the cached tensors depend on: a cache made with other settings is another cache."""
        model = str(Path(self.model).resolve()) if self.model is not None else None
        return {"model": model, "frames": self.frames, "height": self.height, "width": self.width, "fps": self.fps}


@dataclass
class ShardInfo:
    file: str
    ids: list[str]
    sha256: str
    count: int


@dataclass
class CacheIndex:
    """The contents of `index.json`."""

    root: Path
    settings: dict[str, Any]
    shards: list[ShardInfo] = field(default_factory=list)
    empty_prompt: dict[str, str] | None = None  # {"file", "sha256"}
    skipped: dict[str, int] = field(default_factory=dict)
    manifest: str | None = None

    @property
    def num_samples(self) -> int:
        return sum(shard.count for shard in self.shards)

    def done_ids(self) -> set[str]:
        return {sample_id for shard in self.shards for sample_id in shard.ids}

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": INDEX_VERSION,
            "settings": self.settings,
            "manifest": self.manifest,
            "samples": self.num_samples,
            "empty_prompt": self.empty_prompt,
            "skipped": dict(sorted(self.skipped.items())),
            "shards": [dataclasses.asdict(shard) for shard in self.shards],
        }

    def save(self) -> Path:
        path = self.root / INDEX_NAME
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n"))
        return path

    @classmethod
    def load(cls, root: str | Path) -> CacheIndex:
        """Read `root/index.json` (or the index file itself when given)."""
        path = Path(root)
        if path.is_dir():
            path = path / INDEX_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no cache index at {path}: build the cache first (python -m training.cache)")
        try:
            data = json.loads(path.read_text())
            if data.get("version") != INDEX_VERSION:
                raise CacheError(f"{path} has version {data.get('version')!r}, expected {INDEX_VERSION}")
            return cls(
                root=path.parent,
                settings=data["settings"],
                shards=[ShardInfo(**shard) for shard in data["shards"]],
                empty_prompt=data.get("empty_prompt"),
                skipped=dict(data.get("skipped", {})),
                manifest=data.get("manifest"),
            )
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            message = f"unreadable cache index {path} ({error}); delete the folder and re-run the cache"
            raise CacheError(message) from error


# Files ------------------------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> str:
    """Save atomically and return the file's sha256 (hashed before the rename, so it is the file that landed)."""
    digest: list[str] = []

    def write(tmp: Path) -> None:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        digest.append(_sha256(tmp))

    atomic_write(path, write)
    return digest[0]


# Building ---------------------------------------------------------------------------------------------------------


def _check_config(config: CacheConfig) -> None:
    if config.manifest is None:
        raise ValueError("manifest is required (manifest=path/to/manifest.jsonl)")
    if not Path(config.manifest).is_file():
        raise FileNotFoundError(f"manifest not found: {config.manifest}")
    for name in ("frames", "height", "width", "shard_size", "batch_size"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    if not isinstance(config.fps, int | float) or not config.fps > 0:
        raise ValueError(f"fps={config.fps!r} must be positive")


def _check_geometry(config: CacheConfig, pipe) -> None:
    spatial, temporal = pipe.spatial_multiple, pipe.temporal_multiple
    if (config.frames - 1) % temporal:
        raise ValueError(f"frames={config.frames} must be k * {temporal} + 1 for this model (e.g. 9, 13, 61)")
    for name in ("height", "width"):
        if getattr(config, name) % spatial:
            raise ValueError(f"{name}={getattr(config, name)} must be a multiple of {spatial} for this model")


def _open_index(config: CacheConfig, settings: dict[str, Any]) -> CacheIndex:
    """The existing index when its settings match, a fresh one when there is none."""
    output = Path(config.output)
    if not (output / INDEX_NAME).is_file():
        return CacheIndex(root=output, settings=settings)
    index = CacheIndex.load(output)
    if index.settings != settings:
        changed = ", ".join(
            f"{key}: {index.settings.get(key)!r} -> {settings.get(key)!r}"
            for key in sorted(set(index.settings) | set(settings))
            if index.settings.get(key) != settings.get(key)
        )
        raise ValueError(
            f"{output} holds a cache made with other settings ({changed}); "
            f"choose another output folder (output=...) or delete this one"
        )
    return index


def _read_clip(reference: dict, config: CacheConfig) -> np.ndarray:
    """A manifest clip as the model sees it; raises `_Skip` with a countable reason when it cannot be used."""
    try:
        return read_clip(reference, fps=config.fps, frames=config.frames, height=config.height, width=config.width)
    except ClipTooShort as error:
        raise _Skip("too short", str(error)) from error
    except VideoError as error:
        raise _Skip("unreadable", str(error)) from error


class _Skip(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _default_device(config: CacheConfig) -> torch.device:
    return torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _paired(records: list[dict], manifest: Path) -> bool:
    """Whether the records are pairs (True) or captioned clips (False); a manifest mixing both is refused, since a
    batch of a cache must be one kind."""
    kinds = {record["source"] is not None for record in records}
    if len(kinds) > 1:
        single = next(record["id"] for record in records if record["source"] is None)
        raise ValueError(f"{manifest} mixes pairs and captioned clips (e.g. {single} has no source): cache them apart")
    return kinds != {False}


def build_cache(config: CacheConfig, pipe=None) -> CacheIndex:
    """Encode every usable record of `config.manifest` into shards under `config.output`; returns the index.

    `pipe` (a `VideoEditPipeline`) is loaded from `config.model` when not given, and only once there is something
    to encode, so a rerun over a finished cache never loads the model.
    """
    _check_config(config)
    if config.model is None and pipe is None:
        raise ValueError("model is required (model=path/to/pipeline folder)")
    settings = config.settings()
    index = _open_index(config, settings)
    records = read_manifest(config.manifest)
    index.manifest = str(config.manifest)
    index.root.mkdir(parents=True, exist_ok=True)
    # A pipeline handed in stays where the caller put it unless a device is asked for explicitly.
    device = pipe._execution_device if pipe is not None and config.device is None else _default_device(config)
    active = pipe
    checked = False

    def model():
        nonlocal active, checked
        if active is None:
            from editor.pipeline import VideoEditPipeline

            logger.info("loading %s on %s", config.model, device)
            active = VideoEditPipeline.from_pretrained(config.model).to(device)
        if not checked:
            _check_geometry(config, active)
            checked = True
        return active

    def encode_text(prompts: list[str]) -> dict[str, torch.Tensor]:
        parts = []
        for begin in range(0, len(prompts), config.batch_size):
            embeds = model().encode_prompt(prompts[begin : begin + config.batch_size], device, torch.float32)
            parts.append(embeds)
        return {
            "text_states": torch.cat([p.states for p in parts]).float().cpu(),
            "text_mask": torch.cat([p.mask for p in parts]).to(torch.int64).cpu(),
            "text_pooled": torch.cat([p.pooled for p in parts]).float().cpu(),
        }

    if index.empty_prompt is None or not (index.root / index.empty_prompt["file"]).is_file():
        empty = {key: value[0] for key, value in encode_text([""]).items()}
        digest = _write_tensors(index.root / EMPTY_PROMPT_NAME, empty)
        index.empty_prompt = {"file": EMPTY_PROMPT_NAME, "sha256": digest}
        index.save()

    done = index.done_ids()
    skipped: Counter[str] = Counter()
    pending: list[tuple[str, str, torch.Tensor | None, torch.Tensor]] = []  # id, instruction, source, target latents
    seen: set[str] = set()
    encoded = 0
    paired = _paired(records, config.manifest)

    def flush() -> None:
        nonlocal encoded
        if not pending:
            return
        text = encode_text([instruction for _, instruction, _, _ in pending])
        tensors = {"target_latents": torch.cat([target for _, _, _, target in pending]), **text}
        if paired:
            tensors["source_latents"] = torch.cat([source for _, _, source, _ in pending])
        ids = [sample_id for sample_id, _, _, _ in pending]
        name = f"shard-{len(index.shards):05d}.safetensors"
        digest = _write_tensors(index.root / name, tensors, metadata={"ids": json.dumps(ids)})
        index.shards.append(ShardInfo(file=name, ids=ids, sha256=digest, count=len(ids)))
        index.skipped = dict(skipped)
        index.save()
        encoded += len(ids)
        logger.info("wrote %s (%d samples, %d cached in all)", name, len(ids), index.num_samples)
        pending.clear()

    for record in records:
        sample_id = str(record["id"])
        if sample_id in seen:
            skipped["duplicate id"] += 1
            logger.warning("record %s appears more than once in %s; keeping the first", sample_id, config.manifest)
            continue
        seen.add(sample_id)
        if sample_id in done:
            continue
        try:
            source = _read_clip(record["source"], config) if paired else None
            target = _read_clip(record["target"], config)
        except _Skip as skip:
            skipped[skip.reason] += 1
            logger.warning("skipping %s (%s): %s", sample_id, skip.reason, skip)
            continue
        pipe_ = model()
        pending.append(
            (
                sample_id,
                record["instruction"],
                pipe_.encode_video(source, device).float().cpu() if paired else None,
                pipe_.encode_video(target, device).float().cpu(),
            )
        )
        if len(pending) >= config.shard_size:
            flush()
    flush()
    index.skipped = dict(skipped)
    index.save()
    logger.info(
        "%d samples cached in %d shards under %s (%d new); skipped: %s",
        index.num_samples,
        len(index.shards),
        index.root,
        encoded,
        dict(skipped) or "none",
    )
    return index


# Reading ----------------------------------------------------------------------------------------------------------


class CachedDataset(Dataset):
    """The samples of a cache: dicts of `id` and the tensors of `SAMPLE_KEYS`, one sample each (no batch axis).

    A shard's sha256 is checked the first time one of its samples is read, so a corrupt or truncated file fails
    loudly instead of feeding garbage to training.
    """

    def __init__(self, root: str | Path, subset: int | None = None, subset_seed: int = 0) -> None:
        """`subset`: use only this many samples, a random choice fixed by `subset_seed` (for data-budget studies)."""
        self.index = CacheIndex.load(root)
        self.root = self.index.root
        self._locations = [(s, row) for s, shard in enumerate(self.index.shards) for row in range(shard.count)]
        if subset is not None:
            if not 0 < subset <= len(self._locations):
                raise ValueError(f"subset={subset!r} must be between 1 and the {len(self._locations)} cached samples")
            chosen = np.random.default_rng(subset_seed).choice(len(self._locations), size=subset, replace=False)
            self._locations = [self._locations[i] for i in sorted(chosen)]
        self._verified: set[str] = set()

    @property
    def settings(self) -> dict[str, Any]:
        return self.index.settings

    @property
    def ids(self) -> list[str]:
        return [self.index.shards[s].ids[row] for s, row in self._locations]

    def __len__(self) -> int:
        return len(self._locations)

    def _verified_path(self, file: str, sha256: str) -> Path:
        path = self.root / file
        if file not in self._verified:
            if not path.is_file():
                raise CacheError(f"missing shard {path}: re-run the cache to rebuild it")
            if _sha256(path) != sha256:
                raise CacheError(f"corrupt shard {path}: checksum mismatch, delete it and re-run the cache")
            self._verified.add(file)
        return path

    def __getitem__(self, item: int) -> dict[str, Any]:
        if item < 0:
            item += len(self)
        if not 0 <= item < len(self):
            raise IndexError(f"sample {item} out of range for a cache of {len(self)} samples")
        shard_number, row = self._locations[item]
        shard = self.index.shards[shard_number]
        path = self._verified_path(shard.file, shard.sha256)
        sample: dict[str, Any] = {"id": shard.ids[row]}
        # Slicing through safe_open reads one sample, not the whole (possibly gigabytes large) shard.
        with safe_open(str(path), framework="pt") as f:
            stored = set(f.keys())  # captioned clips have no source
            for key in SAMPLE_KEYS:
                if key in stored:
                    sample[key] = f.get_slice(key)[row : row + 1][0]
        return sample

    @property
    def paired(self) -> bool:
        """Whether samples have source latents (editing pairs), or are captioned clips (text-to-video data)."""
        if not self.index.shards:
            return True
        shard = self.index.shards[0]
        with safe_open(str(self._verified_path(shard.file, shard.sha256)), framework="pt") as f:
            stored = set(f.keys())
        return "source_latents" in stored

    def empty_prompt(self) -> dict[str, torch.Tensor]:
        """The empty instruction's `text_states`, `text_mask`, `text_pooled`, shaped like a sample's."""
        entry = self.index.empty_prompt
        if entry is None:
            raise CacheError(f"{self.root} has no empty-prompt embedding; re-run the cache")
        path = self._verified_path(entry["file"], entry["sha256"])
        with safe_open(str(path), framework="pt") as f:
            return {key: f.get_tensor(key) for key in TEXT_KEYS}


# Command line -----------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.cache", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, help="YAML config (CacheConfig fields)")
    parser.add_argument("overrides", nargs="*", help="name=value settings, e.g. manifest=m.jsonl model=models/icve")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(CacheConfig, args.config, args.overrides)
        index = build_cache(config)
    except (ValueError, FileNotFoundError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    skipped = ", ".join(f"{count} {reason}" for reason, count in sorted(index.skipped.items())) or "none skipped"
    shards = f"{len(index.shards)} shards -> {index.root / INDEX_NAME}"
    sys.stdout.write(f"{index.num_samples} samples in {shards} ({skipped})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
