"""Checks an edit against its instruction from pixels alone, and scores it on EditVerse's 0-3 rubric.

:func:`verify` parses the instruction into an intent, describes the source and the edited clip, and checks the
intended change (e.g. "make the red circle blue": a blue circle where the red one was, and no red circle left)
and that nothing else changed (the other objects, the background kind, the style). :func:`judge` turns the same
assessment plus pixel statistics into the three scores a VLM judge would give.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from .describer import Description, describe
from .detect import DetectedObject, colour_labels, detect_objects, sprite_mask
from .detect import unstyle as unstyle_frame
from .language import Intent, location_matches, parse_instruction
from .palette import COLOUR_NAMES

logger = logging.getLogger(__name__)

# An edited object counts as "in the same place" within this fraction of the frame's short side.
_NEAR = 0.25


@dataclass(frozen=True)
class Verdict:
    followed: bool
    edit_type: str
    reason: str
    # bool [F, H, W] for an add whose object is there: where it is (see `added_region`); None otherwise.
    added: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass
class _Assessment:
    intent: Intent | None
    primary: bool = False  # the requested change is there
    partial: bool = False  # something toward it happened (e.g. the object went, but its replacement is wrong)
    side_effects: list[str] = field(default_factory=list)
    reason: str = ""
    involved: set[str] = field(default_factory=set)  # colours the edit may legitimately touch
    added: list[DetectedObject] = field(default_factory=list)  # an add's new objects where the instruction asked


def _matches(obj: DetectedObject, colour: str | None, shape: str | None) -> bool:
    return (colour is None or obj.colour == colour) and (shape is None or obj.partial or obj.shape == shape)


def _find(
    description: Description, colour: str | None, shape: str | None, near: DetectedObject | None = None
) -> list[DetectedObject]:
    reach = _NEAR * min(description.height, description.width)
    found = [o for o in description.objects if _matches(o, colour, shape)]
    if near is not None:
        found = [o for o in found if np.hypot(o.centre[0] - near.centre[0], o.centre[1] - near.centre[1]) < reach]
    return found


def _name(colour: str | None, shape: str | None) -> str:
    return " ".join(w for w in (colour, shape or "object") if w)


def _at(location: str | None, obj: DetectedObject, description: Description) -> bool:
    if location is None:
        return True
    return location_matches(location, obj.centre[0] / description.width, obj.centre[1] / description.height)


def _check_object_edit(a: _Assessment, intent: Intent, before: Description, after: Description) -> None:
    if intent.type == "add":
        had, has = _find(before, intent.colour, intent.shape), _find(after, intent.colour, intent.shape)
        new = [o for o in has if not any(o.colour == h.colour for h in had)] if len(has) > len(had) else []
        a.involved |= {o.colour for o in has}
        if not new:
            a.reason = f"no new {_name(intent.colour, intent.shape)} appeared"
            a.partial = len(after.objects) > len(before.objects)
            return
        where = [o for o in new if _at(intent.location, o, after)]
        a.added = where
        a.primary = bool(where)
        a.partial = not where
        a.reason = f"a {_name(intent.colour, intent.shape)} appeared" + ("" if where else " but not where asked")
        return
    sources = _find(before, intent.colour, intent.shape)
    if not sources:
        a.reason = f"the source shows no {_name(intent.colour, intent.shape)}"
        return
    old = max(sources, key=lambda o: o.area)
    a.involved.add(old.colour)
    still = _find(after, old.colour, old.shape if intent.shape is None else intent.shape, near=old)
    if intent.type == "remove":
        a.primary = not still
        a.reason = f"the {old.label} is gone" if a.primary else f"the {old.label} is still there"
        return
    colour = intent.new_colour or old.colour
    shape = intent.new_shape if intent.type == "replace" else old.shape
    a.involved.add(colour)
    new = _find(after, colour, shape, near=old)
    if intent.type == "replace" and colour == old.colour:
        # Same colour: the old object is one that still has the old shape, and the new one must not be partial.
        new = [o for o in new if not o.partial and o.shape == shape]
        still = [o for o in still if not o.partial and o.shape == old.shape]
    a.primary = bool(new) and not still
    a.partial = not a.primary and (bool(new) or not still)
    if a.primary:
        a.reason = f"a {_name(colour, shape)} is where the {old.label} was"
    elif still:
        a.reason = f"the {old.label} is still there"
    else:
        a.reason = f"the {old.label} changed, but there is no {_name(colour, shape)} in its place"


def _side_effects(a: _Assessment, before: Description, after: Description) -> None:
    intent = a.intent
    if intent.type != "style" and before.style != after.style:
        a.side_effects.append(f"the style changed from {before.style} to {after.style}")
    if intent.type not in ("background", "style") and before.background != after.background:
        a.side_effects.append(f"the background changed from {before.background} to {after.background}")
    kept = {o.colour for o in after.objects}
    for obj in before.complete:
        if obj.colour not in a.involved and obj.colour not in kept:
            a.side_effects.append(f"the {obj.label} disappeared")
    had = {o.colour for o in before.objects}
    for obj in after.complete:
        if obj.colour not in a.involved and obj.colour not in had:
            a.side_effects.append(f"a {obj.label} appeared")


def _assess(before: Description, after: Description, instruction: str) -> _Assessment:
    intent = parse_instruction(instruction)
    a = _Assessment(intent)
    if intent is None:
        a.reason = f"cannot understand the instruction {instruction!r}"
        return a
    if intent.type == "style":
        a.primary = after.style == intent.style
        a.partial = not a.primary and after.style != before.style
        a.reason = f"the style is {after.style} (asked: {intent.style})"
    elif intent.type == "background":
        a.primary = after.background == intent.background
        a.partial = not a.primary and after.background != before.background
        a.reason = f"the background is {after.background} (asked: {intent.background})"
    else:
        _check_object_edit(a, intent, before, after)
    _side_effects(a, before, after)
    return a


def _check_clips(source: np.ndarray, edited: np.ndarray) -> None:
    if source.shape[1:] != edited.shape[1:]:
        raise ValueError(f"source {source.shape} and edited {edited.shape} clips differ in frame size")


def verify(source: np.ndarray, edited: np.ndarray, instruction: str) -> Verdict:
    """Whether ``edited`` is ``source`` with the instruction carried out and nothing else visibly changed."""
    _check_clips(source, edited)
    before, after = describe(source), describe(edited)
    a = _assess(before, after, instruction)
    edit_type = a.intent.type if a.intent else "unknown"
    followed = a.primary and not a.side_effects
    reason = "; ".join([a.reason, *a.side_effects])
    added = _added_region(a, source, edited, (before.style, after.style)) if edit_type == "add" else None
    return Verdict(followed, edit_type, reason, added)


def added_region(source: np.ndarray, edited: np.ndarray, instruction: str) -> np.ndarray | None:
    """bool [F, H, W]: where the object an add instruction asked for is in `edited`, grown by ~3 px at 64 px;
    None unless the instruction is an add and the object is there.

    "Add a red ball" leaves open where the ball goes, so a ground truth's mask marks one right place of many: an
    edit that puts the ball elsewhere has changed pixels outside that mask that it was asked to change.
    """
    return verify(source, edited, instruction).added


def _added_region(a: _Assessment, source: np.ndarray, edited: np.ndarray, styles: tuple) -> np.ndarray | None:
    if not a.added:
        return None
    ids = [COLOUR_NAMES.index(o.colour) + 1 for o in a.added]
    count = min(len(source), len(edited))
    region = np.zeros(edited.shape[:3], bool)
    for f in range(count):
        # Pixels that took the new object's colour: a same-coloured object the source already had is not excused.
        now = np.isin(colour_labels(unstyle_frame(edited[f], styles[1])), ids)
        region[f] = now & ~np.isin(colour_labels(unstyle_frame(source[f], styles[0])), ids)
    return _grow(region)


def _grow(region: np.ndarray) -> np.ndarray:
    grow = max(3, round(3 * min(region.shape[1:3]) / 64))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    return np.stack([cv2.dilate(m.astype(np.uint8), kernel) > 0 for m in region])


def _edit_region(a: _Assessment, source: np.ndarray, edited: np.ndarray, styles: tuple) -> np.ndarray:
    """bool [F, H, W]: pixels of the colours the edit involves, in either clip, grown by ~3 px at 64 px."""
    region = np.zeros(source.shape[:3], bool)
    ids = [COLOUR_NAMES.index(c) + 1 for c in a.involved]
    if not ids:
        return region
    for clip, style in ((source, styles[0]), (edited, styles[1])):
        for f, frame in enumerate(clip[: len(region)]):
            region[f] |= np.isin(colour_labels(unstyle_frame(frame, style)), ids)
    return _grow(region)


def _level(value: float, bounds: tuple[float, float, float]) -> int:
    """3 at or under the first bound, 2 under the second, 1 under the third, else 0."""
    return 3 - int(np.searchsorted(np.asarray(bounds), value, side="left"))


def _background_consistency(
    a: _Assessment, source: np.ndarray, edited: np.ndarray, before: Description, after: Description
) -> int:
    count = min(len(source), len(edited))
    src, out = source[:count].astype(np.float32), edited[:count].astype(np.float32)
    kind = a.intent.type if a.intent else None
    if kind == "style":
        # What must survive a restyle is everything underneath it.
        plain_src = unstyle_frame(source[:count], before.style).astype(np.float32)
        plain_out = unstyle_frame(edited[:count], after.style).astype(np.float32)
        return _level(float(np.abs(plain_src - plain_out).mean()), (2.0, 5.0, 12.0))
    if kind == "background":
        # What must survive a new background is the objects: compare their interiors.
        labels = np.stack([colour_labels(unstyle_frame(f, before.style)) for f in source[:count]]) > 0
        inner = np.stack([cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0 for m in labels])
        if not inner.any():
            return 3
        return _level(float(np.abs(src - out)[inner].mean()), (2.0, 6.0, 20.0))
    outside = ~_edit_region(a, source[:count], edited[:count], (before.style, after.style))
    if not outside.any():
        return 0
    return _level(float(np.abs(src - out)[outside].mean()), (1.0, 3.0, 8.0))


def _frame_quality(frame: np.ndarray, style: str | None) -> tuple[float, int, float | None]:
    """(fraction of sprite-coloured pixels no object explains, objects with an unsure shape, edge sharpness of
    the sprites or None without any) for one frame."""
    plain = unstyle_frame(frame, style)
    labels = colour_labels(plain)
    objects = detect_objects(plain, labels)
    explained = sum(o.area for o in objects)
    unsure = sum(1 for o in objects if not o.partial and (o.shape == "unknown" or o.confidence < 0.2))
    stray = max(0, int((labels > 0).sum()) - explained) / labels.size
    edges = sprite_mask(labels, grow=1) & ~(cv2.erode((labels > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    if not edges.any():
        return stray, unsure, None
    # Curvature over slope across the outlines: independent of contrast, it falls as edges get wider.
    image = plain.astype(np.float32)
    laplacian = np.abs(cv2.Laplacian(image, cv2.CV_32F)).sum(axis=-1)[edges].mean()
    slope = (np.abs(cv2.Sobel(image, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(image, cv2.CV_32F, 0, 1))).sum(axis=-1)
    return stray, unsure, float(laplacian / max(float(slope[edges].mean()), 1e-6))


def _edit_quality(source: np.ndarray, edited: np.ndarray, before: Description, after: Description) -> int:
    penalty = 0
    stray_src, unsure_src, sharp_src = _frame_quality(source[len(source) // 2], before.style)
    stray_out, unsure_out, sharp_out = _frame_quality(edited[len(edited) // 2], after.style)
    excess = stray_out - stray_src
    penalty += int(excess > 0.005) + int(excess > 0.02)
    penalty += int(unsure_out > unsure_src)
    if sharp_src and sharp_out is not None:
        # Sprite outlines are always crisp in this world, so softer ones mean a blurry edit.
        ratio = sharp_out / sharp_src
        penalty += int(ratio < 0.75) + int(ratio < 0.5)
    if len(source) > 2 and len(edited) > 2:
        excess_jitter = _jitter(edited) - _jitter(source)
        penalty += int(excess_jitter > 0.35) + int(excess_jitter > 0.7)
    return max(0, 3 - penalty)


def _jitter(clip: np.ndarray) -> float:
    """Second temporal difference over the first: near 0 for steady motion, ~1 or more for per-frame flicker.

    Scale free, so a busier (textured, moving) clip is not mistaken for a flickering one.
    """
    frames = clip.astype(np.float32)
    first = np.abs(np.diff(frames, axis=0)).mean()
    second = np.abs(np.diff(frames, n=2, axis=0)).mean()
    return float(second / (first + 1.0))


def judge(source: np.ndarray, edited: np.ndarray, instruction: str) -> dict[str, int]:
    """EditVerse-style scores, each 0-3: prompt_following, edit_quality, background_consistency.

    prompt_following: 3 followed, 2 done but with side effects, 1 partly done, 0 not done. edit_quality: 3 minus
    penalties for stray sprite-coloured pixels, unrecognisable shapes and flicker beyond the source's.
    background_consistency: how unchanged the pixels outside the edit are (the objects for a background edit,
    the unstyled image for a style edit).
    """
    _check_clips(source, edited)
    before, after = describe(source), describe(edited)
    a = _assess(before, after, instruction)
    following = (2 if a.side_effects else 3) if a.primary else (1 if a.partial else 0)
    return {
        "prompt_following": following,
        "edit_quality": _edit_quality(source, edited, before, after),
        "background_consistency": _background_consistency(a, source, edited, before, after),
    }
