"""Pixel-level perception for one frame: style, sprite colours, sprite shapes and the background texture.

Nothing here sees a Scene. Colours come from HSV ranges derived from the palette; shapes from contour geometry
of each colour blob, measured on a 4x upsampled mask (a hole means ring, deep concavities mean star, filling its
enclosing triangle means triangle, and round vs square from how the inscribed and enclosing circles compare); the
background kind from the edges left after masking sprites out (none: plain or gradient; one orientation: stripes;
two orthogonal ones: checker; all orientations: dots).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from .palette import BACKGROUND_CHANNEL_RANGE, BACKGROUND_MAX_SATURATION, COLOUR_NAMES, COLOURS, STYLES

logger = logging.getLogger(__name__)

# HSV thresholds (OpenCV units, S and V in 0-255). Background tones stay below S 77 and V 125, sprite colours
# are above S 200 and V 200; the gap leaves room for anti-aliased edges and video compression.
_MIN_SATURATION = 115
_MIN_VALUE = 100
_WHITE_MAX_SATURATION = 50
_WHITE_MIN_VALUE = 185
_WHITE = COLOUR_NAMES.index("white") + 1

# A blob smaller than this fraction of the frame's short side squared is noise or a sliver of an object.
_MIN_AREA_FRACTION = 20 / 64**2
_UPSAMPLE = 4
# Style detection: pixels sampled per frame, and slack (levels) for rounding amplified by a style's inverse.
_STYLE_SAMPLE = 2048
_STYLE_TOLERANCE = 8.0


@dataclass(frozen=True)
class DetectedObject:
    """A sprite seen in a frame. centre (x, y) and bbox (x0, y0, x1, y1, exclusive) in pixels; area in pixels.

    partial: the blob touches the frame border or a sprite of another colour (an occluder), so its shape is
    unreliable. confidence: margin of the shape decision in [0, 1].
    """

    colour: str
    shape: str
    centre: tuple[float, float]
    area: int
    bbox: tuple[int, int, int, int]
    partial: bool = False
    confidence: float = 1.0

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"


def _hue_table() -> np.ndarray:
    """Label (1-based palette index) for each OpenCV hue 0-179, nearest palette hue on the circle."""
    chromatic = [(i + 1, rgb) for i, (name, rgb) in enumerate(COLOURS.items()) if name != "white"]
    pixels = np.array([[rgb for _, rgb in chromatic]], np.uint8)
    hues = cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV)[0, :, 0].astype(np.int32)
    grid = np.arange(180)[:, None]
    dist = np.abs(grid - hues[None, :])
    dist = np.minimum(dist, 180 - dist)
    labels = np.array([label for label, _ in chromatic], np.uint8)
    return labels[dist.argmin(axis=1)]


_HUE_LABEL = _hue_table()


def detect_style(frame: np.ndarray) -> str | None:
    """The global style of an RGB frame, or None when it looks unstyled.

    Unstyled background pixels keep every channel in a known range with low saturation. Each style's inverse is
    applied to (a subsample of) the pixels, and the style under which most pixels look like such a background
    wins; sprites are a minority and fit no hypothesis well, so they do not sway the vote.
    """
    pixels = frame.reshape(-1, 3)
    step = max(1, len(pixels) // _STYLE_SAMPLE)
    pixels = pixels[::step].astype(np.float32)
    lo, hi = BACKGROUND_CHANNEL_RANGE
    best, best_fit = None, -1.0
    for name in (None, *STYLES):
        rgb = pixels if name is None else STYLES[name].invert(pixels)
        top = rgb.max(axis=1)
        in_range = ((rgb >= lo - _STYLE_TOLERANCE) & (rgb <= hi + _STYLE_TOLERANCE)).all(axis=1)
        grey_enough = (top - rgb.min(axis=1)) <= (BACKGROUND_MAX_SATURATION + 0.1) * np.maximum(top, 1.0)
        fit = float((in_range & grey_enough).mean())
        if fit > best_fit:  # ties go to the earlier hypothesis, so "unstyled" wins them
            best, best_fit = name, fit
    return best


def unstyle(frame: np.ndarray, style: str | None) -> np.ndarray:
    """uint8 RGB frame(s) with ``style`` undone (a no-op for None)."""
    if style is None:
        return frame
    return np.rint(np.clip(STYLES[style].invert(frame), 0, 255)).astype(np.uint8)


def colour_labels(frame: np.ndarray) -> np.ndarray:
    """uint8 [H, W]: 0 for background, else 1 + the index of the pixel's palette colour in COLOUR_NAMES."""
    hsv = cv2.cvtColor(np.ascontiguousarray(frame, np.uint8), cv2.COLOR_RGB2HSV)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    labels = np.where((s >= _MIN_SATURATION) & (v >= _MIN_VALUE), _HUE_LABEL[h], 0).astype(np.uint8)
    labels[(s <= _WHITE_MAX_SATURATION) & (v >= _WHITE_MIN_VALUE)] = _WHITE
    return labels


def shape_features(mask: np.ndarray) -> dict[str, float] | None:
    """Geometry of one blob (bool crop with a margin): hole, solidity and fills of enclosing shapes."""
    up = cv2.resize(mask.astype(np.float32), None, fx=_UPSAMPLE, fy=_UPSAMPLE, interpolation=cv2.INTER_LINEAR)
    binary = (up >= 0.5).astype(np.uint8)
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    outer_ids = [i for i in range(len(contours)) if hierarchy[0, i, 3] < 0]
    main = max(outer_ids, key=lambda i: cv2.contourArea(contours[i]))
    outer = contours[main]
    area = cv2.contourArea(outer)
    if area <= 0:
        return None
    holes = sum(cv2.contourArea(contours[i]) for i in range(len(contours)) if hierarchy[0, i, 3] == main)
    solid = np.zeros_like(binary)
    cv2.drawContours(solid, [outer], 0, 1, thickness=cv2.FILLED)
    inscribed = float(cv2.distanceTransform(solid, cv2.DIST_L2, 5).max())
    hull_area = cv2.contourArea(cv2.convexHull(outer))
    (_, _), (rw, rh), _ = cv2.minAreaRect(outer)
    (_, _), radius = cv2.minEnclosingCircle(outer)
    tri_area, _ = cv2.minEnclosingTriangle(outer)
    return {
        "hole": holes / area,
        "solidity": area / max(hull_area, 1e-6),
        "circle_fill": area / max(np.pi * radius**2, 1e-6),
        "rect_fill": area / max(rw * rh, 1e-6),
        "triangle_fill": area / max(tri_area, 1e-6),
        "inscribed": inscribed / max(radius, 1e-6),
    }


def classify_shape(mask: np.ndarray) -> tuple[str, float]:
    """(shape, confidence in [0, 1]) of one blob."""
    features = shape_features(mask)
    if features is None:
        return "unknown", 0.0
    # Thresholds sit midway between the shapes' ranges measured over thousands of renders at 64 px.
    if features["hole"] > 0.1:
        return "ring", float(min(1.0, features["hole"] / 0.2))
    if features["solidity"] < 0.79:
        return "star", float(min(1.0, (0.79 - features["solidity"]) / 0.08))
    triangle_margin = features["triangle_fill"] - max(features["rect_fill"], features["circle_fill"])
    if triangle_margin > 0.1:
        return "triangle", float(min(1.0, (triangle_margin - 0.1) / 0.1))
    # Round vs square: a circle's inscribed circle nearly fills its enclosing one (a square's reaches ~0.71 of
    # it), and a circle fills its enclosing circle better than its bounding rectangle. Each term is scaled by its
    # spread, so together they separate the two far better than either alone.
    inscribed = (features["inscribed"] - 0.815) / 0.04
    fills = (features["circle_fill"] - features["rect_fill"] + 0.07) / 0.07
    score = inscribed + fills + 0.75
    return ("circle" if score > 0 else "square"), float(min(1.0, abs(score) / 1.5))


def _touches_other(labels: np.ndarray, blob: np.ndarray, label: int, x0: int, y0: int) -> bool:
    """Whether a blob (bool ``blob`` placed at ``x0``, ``y0``) borders a sprite of another colour."""
    grown = cv2.dilate(blob.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    near = labels[y0 : y0 + blob.shape[0], x0 : x0 + blob.shape[1]]
    return bool((grown & (near > 0) & (near != label)).any())


def detect_objects(frame: np.ndarray, labels: np.ndarray | None = None) -> list[DetectedObject]:
    """Sprites in one unstyled uint8 RGB frame, largest first."""
    if labels is None:
        labels = colour_labels(frame)
    height, width = labels.shape
    min_area = max(4, round(_MIN_AREA_FRACTION * min(height, width) ** 2))
    blobs = []  # (label, component map, index, stats, centroid) of blobs big enough to be objects
    # Only blobs that are objects themselves count as occluders: anti-aliased edges leave thin slivers of
    # in-between hues around every sprite.
    significant = np.zeros_like(labels)
    for label in np.unique(labels):
        if label == 0:
            continue
        count, comp, stats, centroids = cv2.connectedComponentsWithStats((labels == label).astype(np.uint8), 8)
        for i in range(1, count):
            if stats[i, cv2.CC_STAT_AREA] >= min_area:
                blobs.append((int(label), comp, i, stats[i], centroids[i]))
                x, y, w, h = (int(v) for v in stats[i, :4])
                significant[y : y + h, x : x + w][comp[y : y + h, x : x + w] == i] = label
    found = []
    for label, comp, i, stat, centroid in blobs:
        x, y, w, h, area = (int(v) for v in stat)
        shape, confidence = classify_shape(np.pad(comp[y : y + h, x : x + w] == i, 2))
        y0, x0 = max(y - 1, 0), max(x - 1, 0)
        around = comp[y0 : y + h + 1, x0 : x + w + 1] == i
        partial = x == 0 or y == 0 or x + w == width or y + h == height
        partial = partial or _touches_other(significant, around, label, x0, y0)
        centre = (float(centroid[0]) + 0.5, float(centroid[1]) + 0.5)
        found.append(DetectedObject(COLOUR_NAMES[label - 1], shape, centre, area, (x, y, x + w, y + h),
                                    partial, confidence))  # fmt: skip
    return sorted(found, key=lambda o: -o.area)


def sprite_mask(labels: np.ndarray, grow: int | None = None) -> np.ndarray:
    """bool [H, W]: sprite-coloured pixels grown by ``grow`` px (default ~2 px at 64 px) to cover soft edges."""
    if grow is None:
        grow = max(2, round(2 * min(labels.shape) / 64))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    return cv2.dilate((labels > 0).astype(np.uint8), kernel) > 0


def background_features(frame: np.ndarray, covered: np.ndarray) -> dict[str, float]:
    """Statistics of the background pixels (``covered`` marks sprites to ignore) of an unstyled frame."""
    gray = cv2.cvtColor(np.ascontiguousarray(frame, np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    # Gradients are only trusted where the whole 3x3 stencil is background.
    keep = ~(cv2.dilate(covered.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    keep[0, :] = keep[-1, :] = keep[:, 0] = keep[:, -1] = False
    if keep.sum() < 16:
        return {"pixels": float(keep.sum()), "edges": 0.0, "spread": 0.0, "coherence2": 0.0, "coherence4": 0.0}
    values = gray[keep]
    g = (gx + 1j * gy)[keep]
    magnitude = np.abs(g)
    edge = magnitude > 60.0
    lo, hi = np.percentile(values, [3, 97])
    features = {
        "pixels": float(keep.sum()),
        "edges": float(edge.mean()),
        "spread": float(hi - lo),
        "coherence2": 0.0,
        "coherence4": 0.0,
    }
    if edge.sum() >= 8:
        # Doubling the edge angle folds opposite gradients together (stripes agree); quadrupling also folds
        # perpendicular ones together (checker agrees); circles' edges point everywhere and agree on neither.
        unit = g[edge] / magnitude[edge]
        weight = magnitude[edge]
        features["coherence2"] = float(np.abs((weight * unit**2).sum()) / weight.sum())
        features["coherence4"] = float(np.abs((weight * unit**4).sum()) / weight.sum())
    return features


def classify_background(frame: np.ndarray, covered: np.ndarray) -> str:
    """Background kind of an unstyled uint8 frame with sprite pixels ``covered`` ignored."""
    f = background_features(frame, covered)
    if f["edges"] < 0.02:
        return "gradient" if f["spread"] > 10.0 else "plain"
    if f["coherence2"] > 0.6:
        return "stripes"
    if f["coherence4"] > 0.45:
        return "checker"
    return "dots"
