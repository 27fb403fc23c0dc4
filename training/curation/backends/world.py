"""The procedural world's backends: a pixel-based describer and segmenter, and a counterfactual re-renderer.

The describer and the segmenter see frames only, as a VLM or a segmentation model would. The inpainter is the one
place that uses the world's state: given the world seed of the source clip (a hint no other backend needs) it
re-renders the scene with the masked object changed as the caption says, which is what a perfect video inpainter
would produce.
"""

from __future__ import annotations

import random

import numpy as np

from training.world import (
    COLOUR_NAMES,
    REPLACEMENT_KEEPS_COLOUR,
    SHAPES,
    Edit,
    apply_edit,
    caption,
    describe,
    describe_change,
    edit_mask,
    judge,
    object_masks,
    random_scene,
    render,
    render_mask,
)

from .base import Change, SegmentedObject

# The caption of a removal: the inpainter fills the region with what is behind the object.
BACKGROUND_CAPTION = "the background behind it"


def world_scene(seed: int, num_frames: int, height: int, width: int):
    """The scene of a world source clip: the same for the source stage and the inpainter."""
    return random_scene(np.random.default_rng(seed), num_frames=num_frames, aspect=width / height)


def render_world_clip(seed: int, num_frames: int, height: int, width: int) -> np.ndarray:
    return render(world_scene(seed, num_frames, height, width), num_frames, height, width)


def _split_label(label: str) -> tuple[str, str | None]:
    """("red", "circle") from "red circle"; the shape is None for objects named by colour alone."""
    words = label.split()
    colour = next((w for w in words if w in COLOUR_NAMES), words[0])
    shape = next((w for w in words if w in SHAPES), None)
    return colour, shape


class WorldDescriber:
    def caption(self, frames: np.ndarray) -> str:
        return caption(frames)

    def describe_change(self, source: np.ndarray, target: np.ndarray, seed: int | None = None) -> Change | None:
        found = describe_change(source, target, None if seed is None else np.random.default_rng(seed))
        return None if found is None else Change(edit_type=found[0], instruction=found[1])

    def judge(self, source: np.ndarray, edited: np.ndarray, instruction: str) -> dict[str, int]:
        # The world's judge scores fractionally; a VLM judge answers in whole points.
        return {name: round(value) for name, value in judge(source, edited, instruction).items()}

    def propose_edit(self, frames: np.ndarray, object_label: str, edit_type: str, seed: int) -> str | None:
        rng = random.Random(seed)
        colour, shape = _split_label(object_label)
        used = {obj.colour for obj in describe(frames).objects}
        free_colours = [c for c in COLOUR_NAMES if c not in used]
        if edit_type == "remove":
            return BACKGROUND_CAPTION
        if edit_type == "recolour":
            return f"a {rng.choice(free_colours)} {shape or 'object'}" if free_colours else None
        if edit_type == "replace":
            # As a VLM proposes any other object, and as the world's own replacements are drawn: the new shape
            # usually comes in a new colour, too.
            if free_colours and rng.random() >= REPLACEMENT_KEEPS_COLOUR:
                colour = rng.choice(free_colours)
            return f"a {colour} {rng.choice([s for s in SHAPES if s != shape])}"
        return None


class WorldSegmenter:
    def segment(self, frames: np.ndarray) -> list[SegmentedObject]:
        return [SegmentedObject(label, mask, float(score)) for label, mask, score in object_masks(frames)]


class WorldInpainter:
    def inpaint(self, frames: np.ndarray, mask: np.ndarray, caption: str, seed: int, **hints: object) -> np.ndarray:
        if "world_seed" not in hints:
            raise ValueError("the world inpainter re-renders world clips only: it needs the clip's world_seed")
        num_frames, height, width = mask.shape
        scene = world_scene(int(hints["world_seed"]), num_frames, height, width)
        # The sprite under the mask is the one whose footprint overlaps it most.
        overlaps = [(render_mask(scene, i, num_frames, height, width) & mask).sum() for i in range(len(scene.sprites))]
        if not overlaps or max(overlaps) == 0:
            raise ValueError("the mask covers no object of the scene")
        target = int(np.argmax(overlaps))
        edit = self._edit(caption, target)
        edited = render(apply_edit(scene, edit), num_frames, height, width)
        # Keep every pixel outside the edited footprints, as an inpainter keeps what is outside its mask.
        region = mask | edit_mask(scene, edit, num_frames, height, width)
        return np.where(region[..., None], edited, frames)

    @staticmethod
    def _edit(caption: str, target: int) -> Edit:
        if caption == BACKGROUND_CAPTION:
            return Edit("remove", target=target)
        label = caption.removeprefix("a ").removeprefix("an ")
        upright = label.startswith("upright ")
        colour, shape = _split_label(label.removeprefix("upright "))
        if shape is None or colour not in COLOUR_NAMES:
            raise ValueError(f"the world inpainter cannot draw {caption!r}")
        return Edit("replace", target=target, colour=colour, shape=shape, upright=upright)
