"""Long "raw videos" standing in for real footage: shots separated by hard cuts, objects entering, leaving, changing.

Each shot is a fresh random scene (another background kind and other tones than the shot before, so every cut is
a visible jump) filmed by a slowly panning and zooming camera. Sprites cross the view at their own pace, so they
enter and leave; some change colour or shape once, mid-shot. Everything follows from the seed.

The events (cuts, entries, exits, changes) are ground truth for tests and reports only: curation code must find
cuts and changes from the pixels, as it would on real footage.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .palette import COLOUR_NAMES, SHAPES, STYLE_NAMES
from .render import render
from .scene import (
    Background,
    Camera,
    Scene,
    Sprite,
    random_background,
    random_sprite,
    sprite_in_view,
    view_half_extent,
)

logger = logging.getLogger(__name__)

SHOT_SECONDS = (2.0, 8.0)


@dataclass(frozen=True)
class Event:
    """Something that happens at ``frame`` (global index): "cut", "enter", "exit" or "change".

    sprite: the sprite's number within its shot (None for cuts); detail: labels and other facts.
    """

    frame: int
    kind: str
    sprite: int | None = None
    detail: dict = field(default_factory=dict)

    def to_dict(self, fps: float) -> dict:
        return {"frame": self.frame, "time": round(self.frame / fps, 4), "kind": self.kind, "sprite": self.sprite,
                **self.detail}  # fmt: skip


@dataclass(frozen=True)
class Shot:
    """One shot: ``scene`` from local frame 0, with ``changes`` (local frame, sprite index, new sprite) sorted."""

    start: int
    num_frames: int
    scene: Scene
    changes: tuple[tuple[int, int, Sprite], ...] = ()

    def scene_at(self, frame: int) -> Scene:
        """The scene as it is at local ``frame`` (changes up to and including it applied)."""
        sprites = list(self.scene.sprites)
        for when, index, sprite in self.changes:
            if when <= frame:
                sprites[index] = sprite
        return replace(self.scene, sprites=tuple(sprites))


def _shot_lengths(rng: np.random.Generator, total: int, fps: float) -> list[int]:
    lengths: list[int] = []
    remaining = total
    while remaining > 0:
        length = max(1, round(rng.uniform(*SHOT_SECONDS) * fps))
        # A sliver of a shot at the end would be an unrealistic flash: fold it into the previous shot.
        if remaining - length < SHOT_SECONDS[0] * fps / 2:
            length = remaining
        lengths.append(length)
        remaining -= length
    return lengths


def _random_shot(
    rng: np.random.Generator, start: int, num_frames: int, fps: float, aspect: float, previous: Background | None
) -> Shot:
    background = random_background(rng, avoid=previous)
    pan, heading = rng.uniform(0.0, 0.08) / fps, rng.uniform(0, 2 * np.pi)
    static = rng.random() < 0.3
    camera = Camera(
        x=float(rng.uniform(-3, 3)), y=float(rng.uniform(-3, 3)),
        vx=0.0 if static else float(pan * np.cos(heading)), vy=0.0 if static else float(pan * np.sin(heading)),
        zoom=float(rng.uniform(0.9, 1.1)),
        zoom_rate=0.0 if static else float(np.log(rng.uniform(0.8, 1.25)) / num_frames),
    )  # fmt: skip
    style = str(rng.choice(STYLE_NAMES)) if rng.random() < 0.15 else None
    count = int(rng.integers(2, 6))
    palette = [str(c) for c in rng.permutation(COLOUR_NAMES)]
    colours, spare = palette[:count], palette[count:]
    sprites = []
    for colour in colours:
        # Pick when and where the sprite is in view, then run its straight path back to frame 0.
        t_mid = rng.uniform(0, num_frames)
        cx, cy, zoom = camera.at(t_mid)
        hx, hy = view_half_extent(aspect, zoom)
        speed = (rng.uniform(0.0, 0.03) if rng.random() < 0.3 else rng.uniform(0.05, 0.3)) / fps
        base = random_sprite(rng, colour, 0.0, 0.0, 0.0)
        heading = rng.uniform(0, 2 * np.pi)
        vx, vy = speed * np.cos(heading), speed * np.sin(heading)
        x = cx + rng.uniform(-0.7, 0.7) * hx - vx * t_mid
        y = cy + rng.uniform(-0.7, 0.7) * hy - vy * t_mid
        sprites.append(replace(base, x=float(x), y=float(y), vx=float(vx), vy=float(vy)))
    scene = Scene(background, tuple(sprites), camera, style)

    changes = []
    frames = np.arange(num_frames, dtype=np.float64)
    for index, sprite in enumerate(sprites):
        if rng.random() > 0.35:
            continue
        fully, _ = sprite_in_view(scene, sprite, frames, aspect)
        when = np.flatnonzero(fully[1:]) + 1
        if len(when) == 0:
            continue
        frame = int(rng.choice(when))
        if spare and rng.random() < 0.6:
            changed = replace(sprite, colour=spare.pop())
        else:
            changed = replace(sprite, shape=str(rng.choice([s for s in SHAPES if s != sprite.shape])))
        changes.append((frame, index, changed))
    return Shot(start, num_frames, scene, tuple(sorted(changes, key=lambda c: c[0])))


def _shot_events(shot: Shot, aspect: float) -> list[Event]:
    """Entries, exits and changes of the shot's sprites (entries and exits use each sprite's first shape)."""
    events = []
    frames = np.arange(shot.num_frames, dtype=np.float64)
    for index, sprite in enumerate(shot.scene.sprites):
        _, partly = sprite_in_view(shot.scene, sprite, frames, aspect)
        label = sprite.label
        for frame in np.flatnonzero(np.diff(partly.astype(np.int8)) != 0) + 1:
            kind = "enter" if partly[frame] else "exit"
            events.append(Event(shot.start + int(frame), kind, index, {"label": label}))
    for frame, index, changed in shot.changes:
        before = shot.scene_at(frame - 1).sprites[index].label
        events.append(Event(shot.start + frame, "change", index, {"from": before, "to": changed.label}))
    return events


def _render_shot(shot: Shot, height: int, width: int) -> np.ndarray:
    bounds = sorted({0, shot.num_frames, *(frame for frame, _, _ in shot.changes)})
    pieces = [
        render(shot.scene_at(lo), hi - lo, height, width, start_frame=lo) for lo, hi in itertools.pairwise(bounds)
    ]
    return np.concatenate(pieces, axis=0)


def iter_shots(
    seed: int, duration: float, fps: float, height: int, width: int
) -> Iterator[tuple[Shot, np.ndarray, list[Event]]]:
    """Shot by shot: (shot, uint8 frames [F_shot, H, W, 3], events with global frame numbers)."""
    if duration <= 0 or fps <= 0:
        raise ValueError(f"duration and fps must be positive, got {duration} s at {fps} fps")
    rng = np.random.default_rng(seed)
    aspect = width / height
    start, previous = 0, None
    for length in _shot_lengths(rng, max(1, round(duration * fps)), fps):
        shot = _random_shot(rng, start, length, fps, aspect, previous)
        events = [Event(start, "cut", None, {"background": shot.scene.background.kind})] if start else []
        events += _shot_events(shot, aspect)
        yield shot, _render_shot(shot, height, width), sorted(events, key=lambda e: e.frame)
        start, previous = start + length, shot.scene.background


def generate_raw_video(
    seed: int, duration: float = 20.0, fps: float = 24.0, height: int = 64, width: int = 64
) -> tuple[np.ndarray, list[Event]]:
    """uint8 [F, H, W, 3] frames of a multi-shot video and its events, sorted by frame."""
    frames, events = [], []
    for _, shot_frames, shot_events in iter_shots(seed, duration, fps, height, width):
        frames.append(shot_frames)
        events.extend(shot_events)
    return np.concatenate(frames, axis=0), events


def video_seed(seed: int, index: int) -> int:
    """The seed of video ``index`` of a collection seeded with ``seed`` (independent streams per video)."""
    return int(np.random.SeedSequence((seed, index)).generate_state(1)[0])


def write_raw_videos(
    out_dir: str | Path,
    count: int,
    seed: int = 0,
    duration: float = 20.0,
    fps: float = 24.0,
    size: int | tuple[int, int] = 64,
    workers: int = 1,
) -> list[Path]:
    """Write ``count`` raw videos ``raw_NNNNN.mp4`` with ground truth beside each (``raw_NNNNN.truth.json``).

    ``size`` is a side or ``(height, width)``. Each worker holds one video in memory at a time. Videos already
    written (with their ground truth) are kept, so an interrupted call can simply be repeated.
    """
    height, width = (size, size) if isinstance(size, int) else size
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(out_dir, index, seed, duration, fps, height, width) for index in range(count)]
    if workers <= 1:
        return [_write_raw_video(job) for job in jobs]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_write_raw_video, jobs, chunksize=4))


def _write_raw_video(job: tuple) -> Path:
    # Imported here so that the rest of the world needs only numpy and OpenCV.
    from editor.video import write_video

    out_dir, index, seed, duration, fps, height, width = job
    path = out_dir / f"raw_{index:05d}.mp4"
    if path.with_suffix(".truth.json").is_file():
        return path
    child = video_seed(seed, index)
    frames, shots, events = [], [], []
    for shot, shot_frames, shot_events in iter_shots(child, duration, fps, height, width):
        frames.append(shot_frames)
        events.extend(shot_events)
        shots.append({"start": shot.start, "end": shot.start + shot.num_frames,
                      "background": asdict(shot.scene.background), "style": shot.scene.style,
                      "sprites": [s.label for s in shot.scene.sprites]})  # fmt: skip
    video = np.concatenate(frames, axis=0)
    write_video(path, video, fps)
    truth = {
        "seed": child, "fps": fps, "num_frames": len(video), "height": height, "width": width,
        "cuts": [e.frame for e in events if e.kind == "cut"], "shots": shots,
        "events": [e.to_dict(fps) for e in events],
    }  # fmt: skip
    path.with_suffix(".truth.json").write_text(json.dumps(truth, indent=1))
    logger.debug("wrote %s: %d frames, %d shots", path, len(video), len(shots))
    return path
