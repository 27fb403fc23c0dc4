"""A procedural world that stands in for real footage: coloured shapes over textured backgrounds, filmed by a
panning, zooming camera, rendered fast and deterministically with numpy and OpenCV.

* :mod:`.palette`, :mod:`.shapes`, :mod:`.scene`, :mod:`.render`: what a clip shows and how it is drawn.
* :mod:`.raw_video`: long multi-shot "raw videos" with hard cuts, for mining pairs of unpaired clips.
* :mod:`.edits`: counterfactual edits (re-rendering one change) with masks and instructions.
* :mod:`.detect`, :mod:`.describer`: a frame-only describer (captions, the change between two clips).
* :mod:`.verifier`: checks an edit against its instruction and scores it like a VLM judge.
"""

from .describer import Description, DetectedObject, caption, describe, describe_change, object_masks
from .edits import (
    EDIT_TYPES,
    REPLACEMENT_KEEPS_COLOUR,
    Edit,
    apply_edit,
    edit_mask,
    instruction_for,
    random_edit,
    render_pair,
)
from .language import Intent, parse_instruction
from .palette import BACKGROUNDS, COLOUR_NAMES, COLOURS, SHAPES, STYLE_NAMES, STYLES
from .raw_video import Event, generate_raw_video, iter_shots, write_raw_videos
from .render import render, render_mask
from .scene import Background, Camera, Scene, Sprite, random_scene
from .verifier import Verdict, judge, verify

__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "COLOUR_NAMES",
    "EDIT_TYPES",
    "REPLACEMENT_KEEPS_COLOUR",
    "SHAPES",
    "STYLES",
    "STYLE_NAMES",
    "Background",
    "Camera",
    "Description",
    "DetectedObject",
    "Edit",
    "Event",
    "Intent",
    "Scene",
    "Sprite",
    "Verdict",
    "apply_edit",
    "caption",
    "describe",
    "describe_change",
    "edit_mask",
    "generate_raw_video",
    "instruction_for",
    "iter_shots",
    "judge",
    "object_masks",
    "parse_instruction",
    "random_edit",
    "random_scene",
    "render",
    "render_mask",
    "render_pair",
    "verify",
    "write_raw_videos",
]
