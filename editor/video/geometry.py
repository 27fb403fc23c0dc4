"""Shaping clips for a model: k*m+1 frame counts, aspect-keeping sizes on a pixel grid, crop or pad."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .media import VideoError

# ------------------------------------------------------------------------------------------- model helpers


def frame_count_for(n: int, temporal_multiple: int = 4) -> int:
    """Largest ``k * temporal_multiple + 1`` that is ``<= n`` (what causal video VAEs accept); ``1`` for ``n == 1``."""
    if temporal_multiple < 1:
        raise VideoError(f"temporal_multiple must be >= 1, got {temporal_multiple}")
    if n < 1:
        raise VideoError(f"a clip needs at least 1 frame, got {n}")
    return (n - 1) // temporal_multiple * temporal_multiple + 1


def fit_size(height: int, width: int, *, target_area: int, multiple: int = 16) -> tuple[int, int]:
    """Return ``(height, width)`` with the aspect ratio of the input and area close to ``target_area``.

    Both sides are multiples of ``multiple`` and at least ``multiple``.
    """
    if height < 1 or width < 1:
        raise VideoError(f"size must be positive, got {height}x{width} (height x width)")
    if target_area < 1 or multiple < 1:
        raise VideoError(f"target_area and multiple must be positive, got {target_area} and {multiple}")
    scale = math.sqrt(target_area / (height * width))
    new_h = max(multiple, round(height * scale / multiple) * multiple)
    new_w = max(multiple, round(width * scale / multiple) * multiple)
    return int(new_h), int(new_w)


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape[0] == height and image.shape[1] == width:
        return image
    # INTER_AREA averages when shrinking (no aliasing); cubic is sharper when enlarging.
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interpolation)


def conform_clip(
    frames: np.ndarray,
    *,
    num_frames: int,
    height: int,
    width: int,
    resize_mode: str = "crop",
) -> np.ndarray:
    """Take the first ``num_frames`` frames and bring them to ``height x width``.

    ``"crop"`` scales to cover the target and cuts the centre; ``"pad"`` scales to fit inside it (aspect
    preserved) and centres the picture on black.
    """
    if resize_mode not in ("crop", "pad"):
        raise VideoError(f"unknown resize_mode {resize_mode!r}; use 'crop' or 'pad'")
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = getattr(frames, "shape", None)
        raise VideoError(f"frames must be an array of shape (F, H, W, 3), got {shape}")
    if frames.dtype not in (np.uint8, np.float32):
        raise VideoError(f"frames must be uint8 or float32, got {frames.dtype}")
    if num_frames < 1 or height < 1 or width < 1:
        raise VideoError(f"num_frames, height and width must be positive, got {num_frames}, {height}, {width}")
    if len(frames) < num_frames:
        raise VideoError(f"the clip has {len(frames)} frames but {num_frames} are needed")

    src_h, src_w = frames.shape[1:3]
    out = np.zeros((num_frames, height, width, 3), dtype=frames.dtype)
    if resize_mode == "crop":
        scale = max(height / src_h, width / src_w)
        new_h, new_w = max(height, round(src_h * scale)), max(width, round(src_w * scale))
        top, left = (new_h - height) // 2, (new_w - width) // 2
        for i in range(num_frames):
            out[i] = _resize(frames[i], new_h, new_w)[top : top + height, left : left + width]
    else:
        scale = min(height / src_h, width / src_w)
        new_h, new_w = min(height, max(1, round(src_h * scale))), min(width, max(1, round(src_w * scale)))
        top, left = (height - new_h) // 2, (width - new_w) // 2
        for i in range(num_frames):
            out[i, top : top + new_h, left : left + new_w] = _resize(frames[i], new_h, new_w)
    return out
