"""Counterfactual edits: change one thing in a scene, re-render, and get (source, target, mask, instruction).

Because the target is the same scene re-rendered with one change, everything outside the change is bit-identical
to the source: for object edits the two clips differ only inside the edited sprites' footprints, which the
returned mask covers (old and new footprints, grown by a few pixels). A background edit changes every pixel but
the objects', so its mask is the frame less the objects' interiors; a style edit's is the whole frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import cv2
import numpy as np

from .language import Intent, location_name, noun_phrase, phrase
from .palette import BACKGROUNDS, COLOUR_NAMES, SHAPES, STYLE_NAMES
from .render import render, render_mask
from .scene import (
    IN_VIEW_MARGIN,
    Background,
    Scene,
    Sprite,
    place_sprite,
    random_background,
    restyled_background,
    sprite_in_view,
    view_half_extent,
)

logger = logging.getLogger(__name__)

EDIT_TYPES = ("add", "remove", "replace", "recolour", "background", "style")
OBJECT_EDITS = ("add", "remove", "replace", "recolour")
# How often a replacement keeps the old object's colour; otherwise it takes a colour no object of the scene has.
REPLACEMENT_KEEPS_COLOUR = 0.3


@dataclass(frozen=True)
class Edit:
    """One change. target: index of the edited sprite (remove, replace, recolour); sprite: the new sprite (add).

    shape, colour: the sprite's new shape and colour (replace, recolour); background: the new background;
    style: the new style (None removes a style). upright: a replacement stands at angle 0 without spinning, rather
    than taking the old sprite's turn (which a circle or ring never shows).
    """

    type: str
    target: int | None = None
    sprite: Sprite | None = None
    shape: str | None = None
    colour: str | None = None
    background: Background | None = None
    style: str | None = None
    upright: bool = False

    def __post_init__(self) -> None:
        if self.type not in EDIT_TYPES:
            raise ValueError(f"unknown edit type {self.type!r}; known: {EDIT_TYPES}")
        if self.type in ("remove", "replace", "recolour") and self.target is None:
            raise ValueError(f"a {self.type} edit needs a target sprite index")
        if self.type == "add" and self.sprite is None:
            raise ValueError("an add edit needs the sprite to add")
        if self.type == "background" and self.background is None:
            raise ValueError("a background edit needs the new background")


def _in_view(scene: Scene, sprite: Sprite, num_frames: int, aspect: float) -> bool:
    frames = np.arange(max(num_frames, 1), dtype=np.float64)
    return bool(sprite_in_view(scene, sprite, frames, aspect, margin=IN_VIEW_MARGIN)[0].all())


def _visible_targets(scene: Scene, num_frames: int, aspect: float) -> list[int]:
    return [i for i, s in enumerate(scene.sprites) if _in_view(scene, s, num_frames, aspect)]


def _try_edit(
    kind: str, scene: Scene, rng: np.random.Generator, num_frames: int, aspect: float, canonical: bool
) -> Edit | None:  # fmt: skip
    used = {s.colour for s in scene.sprites}
    free = [c for c in COLOUR_NAMES if c not in used]
    if kind == "background" and canonical:
        kinds = [k for k in BACKGROUNDS if k != scene.background.kind]
        return Edit("background", background=restyled_background(scene.background, str(rng.choice(kinds))))
    if kind == "background":
        return Edit("background", background=random_background(rng, avoid=scene.background))
    if kind == "style":
        options = [s for s in (*STYLE_NAMES, None) if s != scene.style]
        return Edit("style", style=options[int(rng.integers(len(options)))])
    if kind == "add":
        if not free:
            return None
        sprite = place_sprite(rng, scene, str(rng.choice(free)), num_frames, aspect)
        return None if sprite is None else Edit("add", sprite=sprite)
    targets = _visible_targets(scene, num_frames, aspect)
    if not targets:
        return None
    target = int(rng.choice(targets))
    old = scene.sprites[target]
    if kind == "remove":
        return Edit("remove", target=target)
    if kind == "recolour":
        return Edit("recolour", target=target, colour=str(rng.choice(free))) if free else None
    # Some shapes reach farther than others: only those that stay in view replace the sprite.
    shapes = [s for s in SHAPES if s != old.shape and _in_view(scene, replace(old, shape=s), num_frames, aspect)]
    if not shapes:
        return None
    colour = old.colour if not free or rng.random() < REPLACEMENT_KEEPS_COLOUR else str(rng.choice(free))
    return Edit("replace", target=target, shape=str(rng.choice(shapes)), colour=colour, upright=canonical)


def random_edit(
    scene: Scene,
    rng: np.random.Generator,
    *,
    types: tuple[str, ...] = EDIT_TYPES,
    num_frames: int = 9,
    aspect: float = 1.0,
    canonical: bool = False,
) -> Edit:
    """A random edit valid for the scene, its type drawn uniformly from those of ``types`` that are possible.

    Object edits only target sprites in view for the whole clip, and an added sprite stays in view and clear of
    the others; new colours are ones no sprite of the scene has, so colour names keep identifying objects.
    ``canonical`` fixes what an instruction leaves open, so that the target follows from the source and the words:
    a replacement stands upright and still, and a new background keeps the old one's tones in a fixed layout.
    """
    unknown = set(types) - set(EDIT_TYPES)
    if unknown:
        raise ValueError(f"unknown edit types {sorted(unknown)}; known: {EDIT_TYPES}")
    for kind in rng.permutation(list(types)):
        edit = _try_edit(str(kind), scene, rng, num_frames, aspect, canonical)
        if edit is not None:
            return edit
    raise ValueError(f"none of the edit types {types} is possible for this scene")


def apply_edit(scene: Scene, edit: Edit) -> Scene:
    """The scene after the edit."""
    sprites = list(scene.sprites)
    if edit.type == "add":
        sprites.append(edit.sprite)
    elif edit.type == "remove":
        del sprites[edit.target]
    elif edit.type == "recolour":
        sprites[edit.target] = replace(sprites[edit.target], colour=edit.colour)
    elif edit.type == "replace":
        old = sprites[edit.target]
        new = replace(old, shape=edit.shape or old.shape, colour=edit.colour or old.colour)
        sprites[edit.target] = replace(new, angle=0.0, spin=0.0) if edit.upright else new
    elif edit.type == "background":
        return replace(scene, background=edit.background)
    else:
        return replace(scene, style=edit.style)
    return replace(scene, sprites=tuple(sprites))


def edit_mask(
    scene: Scene, edit: Edit, num_frames: int, height: int, width: int, start_frame: int = 0, grow: int | None = None
) -> np.ndarray:
    """bool [F, H, W]: the old and new footprints of the edited sprite grown by ``grow`` px (default ~2 px at
    64 px); for a background edit every pixel but the objects' interiors (their footprints shrunk by ``grow`` px);
    every pixel for a style edit."""
    shape = (num_frames, height, width)
    grow = max(2, round(2 * min(height, width) / 64)) if grow is None else grow
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    if edit.type == "background":
        # A new background must leave the objects as they were, so they lie outside the edit. Their anti-aliased
        # rims blend with the background and change with it: only the interiors are kept out.
        interiors = np.zeros(shape, bool)
        for index in range(len(scene.sprites)):
            footprint = render_mask(scene, index, num_frames, height, width, start_frame)
            interiors |= np.stack([cv2.erode(m.astype(np.uint8), kernel) > 0 for m in footprint])
        return ~interiors
    if edit.type not in OBJECT_EDITS:
        return np.ones(shape, bool)
    mask = np.zeros(shape, bool)
    if edit.type != "add":
        mask |= render_mask(scene, edit.target, num_frames, height, width, start_frame)
    if edit.type != "remove":
        edited = apply_edit(scene, edit)
        index = len(edited.sprites) - 1 if edit.type == "add" else edit.target
        mask |= render_mask(edited, index, num_frames, height, width, start_frame)
    if grow > 0:
        mask = np.stack([cv2.dilate(m.astype(np.uint8), kernel) > 0 for m in mask])
    return mask


def render_pair(
    scene: Scene, edit: Edit, num_frames: int, height: int, width: int, start_frame: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source uint8 [F, H, W, 3], target uint8 [F, H, W, 3], mask bool [F, H, W]) for the edit."""
    source = render(scene, num_frames, height, width, start_frame)
    target = render(apply_edit(scene, edit), num_frames, height, width, start_frame)
    return source, target, edit_mask(scene, edit, num_frames, height, width, start_frame)


def intent_of(edit: Edit, scene: Scene, num_frames: int = 9, aspect: float = 1.0) -> Intent:
    """The edit in words' terms (colours and shapes rather than indices); adds carry where the sprite appears."""
    if edit.type == "background":
        return Intent("background", background=edit.background.kind)
    if edit.type == "style":
        return Intent("style", style=edit.style)
    if edit.type == "add":
        middle = (num_frames - 1) / 2
        x, y = edit.sprite.position(middle)
        cx, cy, zoom = scene.camera.at(middle)
        hx, hy = view_half_extent(aspect, zoom)
        where = location_name(float((x - cx) / (2 * hx) + 0.5), float((y - cy) / (2 * hy) + 0.5))
        return Intent("add", edit.sprite.colour, edit.sprite.shape, location=where)
    old = scene.sprites[edit.target]
    if edit.type == "remove":
        return Intent("remove", old.colour, old.shape)
    if edit.type == "recolour":
        return Intent("recolour", old.colour, old.shape, new_colour=edit.colour)
    return Intent("replace", old.colour, old.shape, new_colour=edit.colour or old.colour,
                  new_shape=edit.shape or old.shape)  # fmt: skip


def _reference(scene: Scene, index: int, rng: np.random.Generator) -> str:
    """How to name sprite ``index`` unambiguously: by colour and shape, or by either alone when that is unique."""
    sprite = scene.sprites[index]
    draw = rng.random()
    if draw < 0.15 and sum(s.shape == sprite.shape for s in scene.sprites) == 1:
        return f"the {noun_phrase(None, sprite.shape, rng)}"
    if draw < 0.3 and sum(s.colour == sprite.colour for s in scene.sprites) == 1:
        return f"the {sprite.colour} {rng.choice(['one', 'object', 'shape'])}"
    return f"the {noun_phrase(sprite.colour, sprite.shape, rng)}"


def instruction_for(
    edit: Edit,
    scene: Scene,
    rng: np.random.Generator,
    *,
    num_frames: int = 9,
    aspect: float = 1.0,
    phrasing: str = "all",
) -> str:
    """A natural instruction for the edit, phrased at random from `phrasing`'s templates ("all", "train",
    "heldout"); objects are named by colour and/or shape."""
    intent = intent_of(edit, scene, num_frames, aspect)
    if intent.type == "add" and rng.random() < 0.5:
        intent = replace(intent, location=None)
    if intent.type == "replace" and intent.new_colour == intent.colour and rng.random() < 0.5:
        intent = replace(intent, new_colour=None)
    old = _reference(scene, edit.target, rng) if edit.target is not None else None
    return phrase(intent, rng, old=old, phrasing=phrasing)
