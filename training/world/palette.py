"""The world's fixed vocabulary: sprite colours, shapes, background kinds and tones, and global styles.

Everything here is chosen so that a pixel-based describer can recover it from a rendered frame:

* sprite colours are saturated and bright, with hues at least ~25 degrees apart (plus one white), so an HSV
  classifier separates them even on anti-aliased edges;
* background tones are dark-to-mid and desaturated (every channel in [45, 125], HSV saturation <= 0.3), so no
  background pixel is ever mistaken for a sprite;
* shapes differ in contour geometry (a hole, deep concavities, or how they fill their enclosing circle, rectangle
  and triangle) at 12-20 px;
* styles are per-channel affine maps, so a describer can recognise them from the background tones and undo them
  before reading sprite colours.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "red": (230, 30, 30),
    "orange": (255, 140, 0),
    "yellow": (250, 225, 20),
    "green": (40, 200, 60),
    "cyan": (0, 210, 230),
    "blue": (40, 90, 255),
    "purple": (160, 50, 230),
    "white": (245, 245, 245),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring")

BACKGROUNDS: tuple[str, ...] = ("plain", "stripes", "checker", "dots", "gradient")

# Each tone comes as a dark and a light variant; textured backgrounds pair a dark with a light one so their edges
# have enough contrast to be seen (and classified) at 64 px.
BACKGROUND_TONES: dict[str, tuple[RGB, RGB]] = {
    "grey": ((58, 58, 58), (112, 112, 112)),
    "slate": ((52, 58, 68), (98, 106, 122)),
    "olive": ((64, 64, 50), (116, 116, 92)),
    "plum": ((66, 52, 64), (120, 98, 116)),
    "teal": ((48, 64, 62), (88, 116, 112)),
    "brown": ((70, 58, 50), (124, 106, 92)),
}
TONE_NAMES: tuple[str, ...] = tuple(BACKGROUND_TONES)

# Limits every unstyled background pixel obeys; the style detector relies on them.
BACKGROUND_CHANNEL_RANGE = (45, 125)
BACKGROUND_MAX_SATURATION = 0.3


@dataclass(frozen=True)
class Style:
    """A global look: ``out = clip(rgb * gain + offset)`` per channel, invertible up to clipping and rounding."""

    name: str
    gain: tuple[float, float, float]
    offset: tuple[float, float, float]

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Float image in, float image out (not clipped or rounded)."""
        return image * np.asarray(self.gain, np.float32) + np.asarray(self.offset, np.float32)

    def invert(self, image: np.ndarray) -> np.ndarray:
        """Best estimate of the unstyled float image."""
        return (image.astype(np.float32) - np.asarray(self.offset, np.float32)) / np.asarray(self.gain, np.float32)


STYLES: dict[str, Style] = {
    "night": Style("night", gain=(0.30, 0.38, 0.62), offset=(0.0, 4.0, 28.0)),
    "sunset": Style("sunset", gain=(0.80, 0.62, 0.40), offset=(45.0, 20.0, 0.0)),
    "faded": Style("faded", gain=(0.50, 0.50, 0.50), offset=(112.0, 110.0, 106.0)),
}
STYLE_NAMES: tuple[str, ...] = tuple(STYLES)

# Sprite sizes: diameter in world units, where one unit is the short side of the frame at zoom 1.
SIZE_RANGE = (0.2, 0.3)


def _check_palette() -> None:
    """Fail at import if an edit to the tables above breaks the separations the describer relies on."""
    lo, hi = BACKGROUND_CHANNEL_RANGE
    for name, pair in BACKGROUND_TONES.items():
        for rgb in pair:
            if not all(lo <= c <= hi for c in rgb):
                raise ValueError(f"background tone {name} {rgb} leaves the channel range {lo}-{hi}")
            saturation = (max(rgb) - min(rgb)) / max(rgb)
            if saturation > BACKGROUND_MAX_SATURATION:
                raise ValueError(f"background tone {name} {rgb} is too saturated ({saturation:.2f})")


_check_palette()
