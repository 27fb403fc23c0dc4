"""Rasterise a :class:`Scene` into frames: background texture in world space, sprites composited in order, style.

The camera is a world -> image transform per frame (``pixel = (world - centre) * zoom * S + frame_centre``, with S
the short side in pixels), applied to the background texture as well, so pans and zooms move everything. Texture
edges and sprite outlines are anti-aliased (sub-pixel polygons from OpenCV, a one-pixel ramp for textures).

Sprites are composited only inside their own bounding boxes, so a pixel that no sprite covers keeps exactly the
background value: edits outside a sprite's footprint leave the frame bit-identical, which the edit masks rely on.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from .palette import COLOURS, STYLES
from .scene import Background, Scene, Sprite
from .shapes import RADIUS, outline

logger = logging.getLogger(__name__)

_SHIFT = 4  # OpenCV fixed-point bits: 1/16 px vertex precision
_ONE = 1 << _SHIFT


def camera_transform(
    scene: Scene, frames: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scale [F], offset_x [F], offset_y [F]) with ``image = world * scale + offset`` (pixel centres at +0.5)."""
    cx, cy, zoom = scene.camera.at(np.asarray(frames, np.float64))
    scale = zoom * min(height, width)
    return scale, width / 2.0 - cx * scale, height / 2.0 - cy * scale


def _ramp(signed_px: np.ndarray) -> np.ndarray:
    """Coverage from a signed distance in pixels (positive inside): a one-pixel anti-aliasing ramp."""
    return np.clip(signed_px + 0.5, 0.0, 1.0)


def _square_wave(s: np.ndarray, px_per_cycle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inside first half-cycle, distance to the nearest edge in px) for texture coordinate ``s`` in cycles."""
    frac = s - np.floor(s)
    half = np.mod(frac, 0.5)
    return frac < 0.5, np.minimum(half, 0.5 - half) * px_per_cycle


def background_weight(background: Background, u: np.ndarray, v: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Per-pixel weight of ``colour_b`` in [0, 1] at world coordinates ``u``, ``v`` ([F, H, W] broadcastable)."""
    kind = background.kind
    if kind == "plain":
        return np.zeros(np.broadcast_shapes(u.shape, v.shape), np.float32)
    theta = np.float32(np.deg2rad(background.angle))
    px_per_cycle = np.float32(background.period) * scale
    if kind == "gradient":
        # A triangle wave rather than one ramp: wherever the camera looks, part of a blend is in view.
        along = (u * np.cos(theta) + v * np.sin(theta)) / background.period + background.phase[0]
        return np.abs(2.0 * (0.5 * along - np.floor(0.5 * along + 0.5)))
    if kind == "stripes":
        s = (u * np.cos(theta) + v * np.sin(theta)) / background.period + background.phase[0]
        inside, dist = _square_wave(s, px_per_cycle)
        return _ramp(np.where(inside, dist, -dist))
    # Checker and dots live on a lattice, rotated by the background angle.
    su = (u * np.cos(theta) + v * np.sin(theta)) / background.period + background.phase[0]
    sv = (-u * np.sin(theta) + v * np.cos(theta)) / background.period + background.phase[1]
    if kind == "checker":
        in_u, dist_u = _square_wave(su, px_per_cycle)
        in_v, dist_v = _square_wave(sv, px_per_cycle)
        dist = np.minimum(dist_u, dist_v)
        return _ramp(np.where(in_u ^ in_v, dist, -dist))
    fu, fv = su - np.floor(su) - 0.5, sv - np.floor(sv) - 0.5
    return _ramp((background.dot_radius - np.hypot(fu, fv)) * px_per_cycle)


def render_background(scene: Scene, frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Float32 [F, H, W, 3] background, before style."""
    a = np.asarray(scene.background.colour_a, np.float32)
    b = np.asarray(scene.background.colour_b, np.float32)
    if scene.background.kind == "plain":
        return np.broadcast_to(a, (len(frames), height, width, 3)).copy()
    scale, ox, oy = camera_transform(scene, frames, height, width)
    # float32 keeps texture positions exact to ~1e-5 px over the world's extent, at half the cost of float64.
    scale3 = scale[:, None, None].astype(np.float32)
    u = (np.arange(width, dtype=np.float32)[None, None, :] + 0.5 - ox[:, None, None].astype(np.float32)) / scale3
    v = (np.arange(height, dtype=np.float32)[None, :, None] + 0.5 - oy[:, None, None].astype(np.float32)) / scale3
    weight = background_weight(scene.background, u, v, scale3).astype(np.float32, copy=False)
    weight = np.broadcast_to(weight, (len(frames), height, width))
    return a + (b - a) * weight[..., None]


def sprite_coverage(
    sprite: Sprite, t: float, scale: float, ox: float, oy: float, height: int, width: int
) -> tuple[np.ndarray, int, int] | None:
    """(coverage float32 [h, w] in [0, 1], y0, x0) of the sprite's box clipped to the frame; None when off frame."""
    x, y = sprite.position(t)
    px, py = float(x) * scale + ox, float(y) * scale + oy
    reach = RADIUS[sprite.shape] * sprite.size * scale + 2.0
    x0, y0 = int(np.floor(px - reach)), int(np.floor(py - reach))
    x1, y1 = int(np.ceil(px + reach)) + 1, int(np.ceil(py + reach)) + 1
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        return None
    canvas = np.zeros((y1 - y0, x1 - x0), np.uint8)
    # OpenCV puts pixel centres on integers; our image coordinates put them at +0.5.
    centre = np.array([px - x0 - 0.5, py - y0 - 0.5])
    for poly, filled in outline(sprite.shape, sprite.size * scale, float(sprite.rotation(t))):
        points = np.round((poly + centre) * _ONE).astype(np.int32)
        cv2.fillPoly(canvas, [points], 255 if filled else 0, lineType=cv2.LINE_AA, shift=_SHIFT)
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x1, width), min(y1, height)
    crop = canvas[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return crop.astype(np.float32) * (1.0 / 255.0), cy0, cx0


def _composite(image: np.ndarray, coverage: np.ndarray, y0: int, x0: int, colour: np.ndarray) -> None:
    h, w = coverage.shape
    region = image[y0 : y0 + h, x0 : x0 + w]
    alpha = coverage[..., None]
    region += (colour - region) * alpha


def _frames(num_frames: int, start_frame: int) -> np.ndarray:
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return np.arange(start_frame, start_frame + num_frames, dtype=np.float64)


def render_float(scene: Scene, num_frames: int, height: int, width: int, start_frame: int = 0) -> np.ndarray:
    """Float32 [F, H, W, 3] frames in 0-255 before style and rounding."""
    frames = _frames(num_frames, start_frame)
    image = render_background(scene, frames, height, width)
    scale, ox, oy = camera_transform(scene, frames, height, width)
    colours = [np.asarray(COLOURS[s.colour], np.float32) for s in scene.sprites]
    for f, t in enumerate(frames):
        for sprite, colour in zip(scene.sprites, colours, strict=True):
            cover = sprite_coverage(sprite, t, scale[f], ox[f], oy[f], height, width)
            if cover is not None:
                _composite(image[f], *cover, colour)
    return image


def finish(image: np.ndarray, style: str | None) -> np.ndarray:
    """Apply the style to float frames and quantise to uint8."""
    if style is not None:
        image = STYLES[style].apply(image)
    return np.rint(np.clip(image, 0.0, 255.0)).astype(np.uint8)


def render(scene: Scene, num_frames: int, height: int, width: int, start_frame: int = 0) -> np.ndarray:
    """uint8 [F, H, W, 3] RGB frames ``start_frame .. start_frame + num_frames - 1`` of the scene."""
    return finish(render_float(scene, num_frames, height, width, start_frame), scene.style)


def render_mask(
    scene: Scene, sprite_index: int, num_frames: int, height: int, width: int, start_frame: int = 0
) -> np.ndarray:
    """bool [F, H, W]: every pixel the sprite's (anti-aliased) footprint touches, occluded or not."""
    frames = _frames(num_frames, start_frame)
    sprite = scene.sprites[sprite_index]
    scale, ox, oy = camera_transform(scene, frames, height, width)
    mask = np.zeros((len(frames), height, width), bool)
    for f, t in enumerate(frames):
        cover = sprite_coverage(sprite, t, scale[f], ox[f], oy[f], height, width)
        if cover is not None:
            coverage, y0, x0 = cover
            h, w = coverage.shape
            mask[f, y0 : y0 + h, x0 : x0 + w] = coverage > 0
    return mask
