"""Sprite outlines in sprite-local units: a sprite of size 1 is about one world unit across.

Each shape is a list of layers ``(polygon, filled)`` drawn in order: a filled layer paints coverage, an unfilled
one cuts it away again (the ring's hole). Proportions are picked for the describer: the ring's hole stays several
pixels wide and the star's concavities stay deep at the smallest size the world uses (about 12 px).
"""

from __future__ import annotations

import logging

import numpy as np

from .palette import SHAPES

logger = logging.getLogger(__name__)

_CIRCLE_SEGMENTS = 40


def _regular(count: int, radius: float, start_deg: float = -90.0) -> np.ndarray:
    angles = np.deg2rad(start_deg + 360.0 * np.arange(count) / count)
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def _star(points: int, outer: float, inner: float) -> np.ndarray:
    radii = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    angles = np.deg2rad(-90.0 + 180.0 * np.arange(2 * points) / points)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


OUTLINES: dict[str, list[tuple[np.ndarray, bool]]] = {
    "circle": [(_regular(_CIRCLE_SEGMENTS, 0.5), True)],
    "square": [(np.array([[-0.42, -0.42], [0.42, -0.42], [0.42, 0.42], [-0.42, 0.42]]), True)],
    "triangle": [(_regular(3, 0.6), True)],
    "star": [(_star(5, 0.62, 0.27), True)],
    "ring": [(_regular(_CIRCLE_SEGMENTS, 0.5), True), (_regular(_CIRCLE_SEGMENTS, 0.28), False)],
}

# Farthest outline point from the centre, at any rotation: used for visibility and spacing checks.
RADIUS: dict[str, float] = {
    name: float(max(np.hypot(poly[:, 0], poly[:, 1]).max() for poly, _ in layers)) for name, layers in OUTLINES.items()
}

if set(OUTLINES) != set(SHAPES):
    raise ValueError(f"outlines {sorted(OUTLINES)} do not match the palette's shapes {sorted(SHAPES)}")


def outline(shape: str, size: float, angle_deg: float) -> list[tuple[np.ndarray, bool]]:
    """The shape's layers scaled to ``size`` and rotated by ``angle_deg`` (clockwise on screen), centred on 0."""
    theta = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    return [(poly @ rot * size, filled) for poly, filled in OUTLINES[shape]]
