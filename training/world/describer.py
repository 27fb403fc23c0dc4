"""A describer that only sees frames: captions a clip and says what changed between two clips.

It reads a few frames (the middle one and two around it), undoes a recognised style, finds the sprites and the
background kind with :mod:`.detect`, and votes over the frames on each sprite's shape. Sprite colours are unique
within a scene of this world, so a colour names an object across frames and across clips: that is how changes
are matched, which also works for two clips cut from one continuous shot where objects moved in between.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .detect import DetectedObject, classify_background, colour_labels, detect_objects, detect_style, sprite_mask
from .detect import unstyle as unstyle_frame
from .language import BACKGROUND_ADJ, Intent, article, location_name, phrase
from .palette import COLOUR_NAMES

logger = logging.getLogger(__name__)

__all__ = ["Description", "DetectedObject", "caption", "describe", "describe_change", "object_masks"]

# Two detections of one colour farther apart than this (fraction of the short side) are different objects.
_TRACK_RADIUS = 0.25
# Stage-1 clips may be seconds apart, so an object that changed colour may also have moved.
_PAIR_RADIUS = 0.3
_STYLE_PHRASES = {"night": "at night", "sunset": "in warm sunset light", "faded": "with a faded, washed-out look"}


@dataclass(frozen=True)
class Description:
    """What a clip shows: objects (largest first, from the middle frame), background kind, style.

    background_votes: how many of the sampled frames agreed on the background kind, out of ``samples``.
    """

    objects: tuple[DetectedObject, ...]
    background: str
    style: str | None
    height: int
    width: int
    background_votes: int = 1
    samples: int = 1

    @property
    def complete(self) -> list[DetectedObject]:
        """Objects neither cut by the border nor touching another sprite (their shapes are trustworthy)."""
        return [o for o in self.objects if not o.partial]


def _sample_indices(count: int, samples: int) -> list[int]:
    middle = count // 2
    if samples <= 1 or count < 3:
        return [middle]
    step = max(1, count // 4)
    return sorted({max(0, middle - step), middle, min(count - 1, middle + step)})


def _as_clip(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [F, H, W, 3], got {frames.dtype} {frames.shape}")
    return frames


def describe(frames: np.ndarray, samples: int = 3) -> Description:
    """Describe a clip (uint8 [F, H, W, 3], or one frame [H, W, 3]) from up to ``samples`` frames."""
    frames = _as_clip(frames)
    indices = _sample_indices(len(frames), samples)
    middle = len(frames) // 2
    style = detect_style(frames[middle])
    height, width = frames.shape[1:3]
    per_frame: dict[int, list[DetectedObject]] = {}
    backgrounds = []
    for index in indices:
        frame = unstyle_frame(frames[index], style)
        labels = colour_labels(frame)
        per_frame[index] = detect_objects(frame, labels)
        backgrounds.append(classify_background(frame, sprite_mask(labels)))
    reach = _TRACK_RADIUS * min(height, width)
    objects = []
    for obj in per_frame[middle]:
        votes: Counter[str] = Counter()
        for index in indices:
            near = [o for o in per_frame[index] if o.colour == obj.colour and _distance(o, obj) < reach]
            seen = min(near, key=lambda o: _distance(o, obj)) if near else None
            if seen is not None and not seen.partial and seen.shape != "unknown":
                # The middle frame breaks ties: it is the one the object's position comes from.
                votes[seen.shape] += 0.5 + seen.confidence + (0.01 if index == middle else 0.0)
        shape = votes.most_common(1)[0][0] if votes else obj.shape
        objects.append(DetectedObject(obj.colour, shape, obj.centre, obj.area, obj.bbox, obj.partial, obj.confidence))
    kind, votes = Counter(backgrounds).most_common(1)[0]
    if votes * 2 <= len(backgrounds):
        kind = backgrounds[indices.index(middle)]
    return Description(tuple(objects), kind, style, height, width, votes, len(indices))


def _distance(a: DetectedObject, b: DetectedObject) -> float:
    return float(np.hypot(a.centre[0] - b.centre[0], a.centre[1] - b.centre[1]))


def _where(obj: DetectedObject, description: Description) -> str:
    return location_name(obj.centre[0] / description.width, obj.centre[1] / description.height)


def caption(frames: np.ndarray) -> str:
    """One sentence: "a red circle and a blue square over a striped background", plus the style if any."""
    description = describe(frames)
    names = [o.label for o in sorted(description.complete, key=lambda o: o.centre[0])]
    listed = [f"{article(n)} {n}" for n in names]
    adj = BACKGROUND_ADJ[description.background]
    if not listed:
        text = f"an empty {adj} background"
    else:
        things = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
        text = f"{things} over {article(adj)} {adj} background"
    if description.style is not None:
        text += f", {_STYLE_PHRASES[description.style]}"
    return text


@dataclass(frozen=True)
class _Candidate:
    salience: float
    intent: Intent


def _object_changes(before: Description, after: Description) -> list[_Candidate]:
    """Every object-level change between two descriptions, matched by colour and then by proximity."""
    first = {o.colour: o for o in reversed(before.objects)}  # largest blob per colour wins
    second = {o.colour: o for o in reversed(after.objects)}
    scale = min(before.height, before.width)
    found = []
    for colour in [c for c in first if c in second]:
        a, b = first[colour], second[colour]
        if not a.partial and not b.partial and a.shape != b.shape:
            found.append(_Candidate(1.5 * max(a.area, b.area), Intent("replace", colour, a.shape, colour, b.shape)))
    # Dict order, not set order: string hashing differs between processes, and results must not.
    gone = [first[c] for c in first if c not in second]
    new = [second[c] for c in second if c not in first]
    pairs = sorted(((_distance(a, b), i, j) for i, a in enumerate(gone) for j, b in enumerate(new)))
    used_gone, used_new = set(), set()
    for dist, i, j in pairs:
        if dist > _PAIR_RADIUS * scale or i in used_gone or j in used_new:
            continue
        a, b = gone[i], new[j]
        used_gone.add(i)
        used_new.add(j)
        # Name the object by a trustworthy shape, or by its colour alone ("the red one") when there is none.
        shape = None if a.partial and b.partial else b.shape if a.partial else a.shape
        if a.shape == b.shape or a.partial or b.partial:
            intent = Intent("recolour", a.colour, shape, new_colour=b.colour)
        else:
            intent = Intent("replace", a.colour, a.shape, new_colour=b.colour, new_shape=b.shape)
        found.append(_Candidate(1.5 * max(a.area, b.area), intent))
    # Objects cut by the border still have a trustworthy colour, but not a shape, and matter less.
    for i, a in enumerate(gone):
        if i not in used_gone:
            intent = Intent("remove", a.colour, None if a.partial else a.shape)
            found.append(_Candidate(a.area * (0.5 if a.partial else 1.0), intent))
    for j, b in enumerate(new):
        if j not in used_new:
            intent = Intent("add", b.colour, None if b.partial else b.shape, location=_where(b, after))
            found.append(_Candidate(b.area * (0.5 if b.partial else 1.0), intent))
    return found


def describe_change(
    source: np.ndarray, target: np.ndarray, rng: np.random.Generator | None = None
) -> tuple[str, str] | None:
    """(edit type, instruction) for the most salient change from ``source`` to ``target``; None if none is seen.

    A style change outranks a background change, which outranks object changes; among those, in-place changes
    (recolour, replace) count 1.5 times their area against objects that came or went.

    rng: None words the change the plainest way; with it, the instruction is drawn from the training templates
        (never the ones a held-out benchmark asks in), as an instruction writer varies its wording.
    """
    before, after = describe(source), describe(target)
    if before.style != after.style:
        intent = Intent("style", style=after.style)
    # A kind that only some sampled frames agree on is too shaky to call a background change.
    elif before.background != after.background and _steady(before) and _steady(after):
        intent = Intent("background", background=after.background)
    elif changes := _object_changes(before, after):
        intent = max(changes, key=lambda c: c.salience).intent
    else:
        return None
    return intent.type, phrase(intent, rng, phrasing="train")


def _steady(description: Description) -> bool:
    return description.background_votes == description.samples


def object_masks(frames: np.ndarray) -> list[tuple[str, np.ndarray, float]]:
    """(label, bool [F, H, W] mask, confidence) for each object of the clip's middle frame.

    Colours are unique per scene here, so each object's mask is its colour's pixels in every frame.
    """
    frames = _as_clip(frames)
    description = describe(frames)
    style = description.style
    labels = np.stack([colour_labels(unstyle_frame(frame, style)) for frame in frames])
    result = []
    for obj in description.objects:
        mask = labels == COLOUR_NAMES.index(obj.colour) + 1
        result.append((obj.label, mask, obj.confidence))
    return result
