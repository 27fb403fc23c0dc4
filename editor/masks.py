"""Edit masks: where an edit may change the video, and where the source must be kept.

A mask is True (or white) where the edit goes. It comes as one still image drawn on one frame, or as one image per
frame (a mask video). A still mask is carried over the clip either as it is ("static") or by following the content
it covers with dense optical flow ("track", OpenCV's Farneback). Feathering softens the edge inwards only, so every
pixel outside the drawn region keeps the source exactly while the edit fades in over `radius` pixels inside it.

The pipeline uses two forms: the binary mask, max-pooled onto the latent grid for blending during sampling, and the
feathered mask for the final composite with the source pixels.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from .video import VideoError, conform_clip, probe_video, read_video

logger = logging.getLogger(__name__)

PROPAGATIONS = ("static", "track")

# Farneback settings for frames of a few hundred pixels: a 3-level pyramid reaches motions of ~20 px per frame,
# and a 15 px window is wide enough to see texture inside a plain object.
_FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


class MaskError(ValueError):
    """A mask cannot be used; the message says why and names the file or value."""


def mask_from_image(image: np.ndarray) -> np.ndarray:
    """A boolean `[H, W]` mask from a grey, RGB or RGBA image: painted (non-transparent) or bright pixels are True.

    An image with any transparency is read by its alpha (a brush layer: what was painted is the mask); an opaque one
    by its colour (white, or any strong colour, on black).
    """
    image = np.asarray(image)
    if image.ndim == 2:
        return _bright(image)
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise MaskError(f"a mask image must be [H, W], [H, W, 3] or [H, W, 4], got shape {tuple(image.shape)}")
    if image.shape[-1] == 4:
        alpha = image[..., 3]
        opaque = 255 if image.dtype == np.uint8 else 1.0
        if alpha.min() < opaque:
            return alpha > 0
        image = image[..., :3]
    return _bright(image.max(axis=-1))


def _bright(gray: np.ndarray) -> np.ndarray:
    if gray.dtype == np.bool_:
        return gray
    if gray.dtype == np.uint8:
        # A uint8 array holding only 0 and 1 is a mask already, not a dark image.
        return gray > (0 if gray.max() <= 1 else 127)
    return gray > 0.5


def load_mask(
    path: str | os.PathLike[str],
    *,
    fps: float | None = None,
    start: float = 0.0,
    end: float | None = None,
    max_frames: int | None = None,
) -> np.ndarray:
    """Read a mask file: an image gives `[H, W]`, a video (or animated GIF) `[F, H, W]`, both boolean.

    A mask video is read with the same `fps`, `start`, `end` as its source so frame `k` of each lines up.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise MaskError(f"mask file not found: {path}")
    if path.stat().st_size == 0:
        raise MaskError(f"mask file {path} is empty (0 bytes)")
    try:
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) == 1:
                image.load()
                return mask_from_image(np.asarray(image.convert("RGBA" if _has_alpha(image) else "RGB")))
    except (UnidentifiedImageError, OSError) as error:
        logger.debug("%s is not a still image (%s); trying it as a video", path, error)
    try:
        probe_video(path)
        clip = read_video(path, fps=fps, start=start, end=end, max_frames=max_frames)
    except VideoError as error:
        raise MaskError(f"mask file {path} is neither an image nor a video: {error}") from error
    return np.stack([mask_from_image(frame) for frame in clip.frames])


def _has_alpha(image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def resize_mask(mask: np.ndarray, height: int, width: int, resize_mode: str = "crop") -> np.ndarray:
    """Bring a boolean `[F, H, W]` mask to `height x width` exactly as `conform_clip` brings its video there."""
    if mask.shape[1:] == (height, width):
        return mask
    planes = np.repeat(mask.astype(np.float32)[..., None], 3, axis=-1)  # F, H, W, 3 for conform_clip
    resized = conform_clip(planes, num_frames=len(mask), height=height, width=width, resize_mode=resize_mode)
    return resized[..., 0] >= 0.5


def propagate_mask(mask: np.ndarray, frames: np.ndarray, *, frame: int = 0, mode: str = "static") -> np.ndarray:
    """Carry a still `[H, W]` mask drawn on `frames[frame]` over all `frames` (`[F, H, W, 3]` uint8): `[F, H, W]`.

    "static" repeats it on every frame; "track" moves it with the content under it, frame to frame, forwards and
    backwards from the one it was drawn on.
    """
    if mode not in PROPAGATIONS:
        raise MaskError(f"mask propagation {mode!r} must be one of {PROPAGATIONS}")
    if not 0 <= frame < len(frames):
        raise MaskError(f"mask frame {frame} is outside the clip's {len(frames)} frames (0 to {len(frames) - 1})")
    if mask.shape != frames.shape[1:3]:
        raise MaskError(f"mask of size {mask.shape} does not match frames of size {frames.shape[1:3]}")
    out = np.repeat(mask[None].astype(bool), len(frames), axis=0)  # F, H, W
    if mode == "static":
        return out
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    for t in range(frame + 1, len(frames)):
        out[t] = _warp(out[t - 1], gray[t], gray[t - 1])
    for t in range(frame - 1, -1, -1):
        out[t] = _warp(out[t + 1], gray[t], gray[t + 1])
    return out


def _warp(mask: np.ndarray, gray_to: np.ndarray, gray_from: np.ndarray) -> np.ndarray:
    """The mask of `gray_from` moved onto `gray_to`: each pixel of `gray_to` looks up where it came from."""
    flow = cv2.calcOpticalFlowFarneback(gray_to, gray_from, None, **_FARNEBACK)  # H, W, 2 (dx, dy)
    h, w = mask.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    moved = cv2.remap(mask.astype(np.float32), xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR)
    # Thresholding each step keeps the edge sharp; blurred masks would grow or fade over a long clip.
    return moved >= 0.5


def feather_mask(mask: np.ndarray, radius: float) -> np.ndarray:
    """A float `[F, H, W]` mask in [0, 1] that rises from 0 at the edge of `mask` to 1 at `radius` pixels inside.

    Outside `mask` it is exactly 0, so compositing with it keeps every outside pixel of the source unchanged.
    """
    if not radius >= 0:
        raise MaskError(f"feather radius {radius!r} must be >= 0 pixels")
    if radius == 0:
        return mask.astype(np.float32)
    out = np.empty(mask.shape, dtype=np.float32)
    for i, plane in enumerate(mask):
        # Distance of each inside pixel to the nearest outside one (1 next to the edge); frame borders do not count.
        inside = cv2.distanceTransform(plane.astype(np.uint8), cv2.DIST_L2, 5)
        ramp = np.clip(inside / radius, 0.0, 1.0)
        out[i] = ramp * ramp * (3 - 2 * ramp)  # smoothstep: no visible kink where the edit meets the source
    return out


def latent_mask(mask: np.ndarray, spatial_ratio: int, temporal_ratio: int) -> np.ndarray:
    """A pixel mask `[F, H, W]` on the latent grid `[F', H', W']` of a causal video VAE: a latent cell is in the mask
    if any pixel it encodes is (the first latent frame encodes frame 0 alone, each later one `temporal_ratio`)."""
    frames, height, width = mask.shape
    if (frames - 1) % temporal_ratio or height % spatial_ratio or width % spatial_ratio:
        raise MaskError(
            f"mask of shape {mask.shape} does not fit a latent grid of {spatial_ratio}x spatial and "
            f"{temporal_ratio}x temporal compression"
        )
    first = mask[:1]
    rest = mask[1:].reshape(-1, temporal_ratio, height, width).max(axis=1)  # F'-1, H, W
    grid = np.concatenate([first, rest]).astype(np.float32)  # F', H, W
    grid = grid.reshape(len(grid), height // spatial_ratio, spatial_ratio, width // spatial_ratio, spatial_ratio)
    return grid.max(axis=(2, 4))  # F', H', W'


def composite(source: np.ndarray, edited: np.ndarray, feathered: np.ndarray) -> np.ndarray:
    """`edited` where the mask is 1, `source` where it is 0, blended between; uint8 `[F, H, W, 3]` (or batched)."""
    weight = feathered[..., None]  # F, H, W, 1
    source_f = source.astype(np.float32)
    blended = source_f + weight * (edited.astype(np.float32) - source_f)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def overlay_mask(frames: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = (255, 48, 48)) -> np.ndarray:
    """Frames `[F, H, W, 3]` with the mask `[F, H, W]` (bool or feathered) tinted in `color`, to check it by eye."""
    tint = np.broadcast_to(np.asarray(color, dtype=np.uint8), frames.shape)
    return composite(frames, tint, 0.5 * mask.astype(np.float32))


def prepare_mask(
    mask: str | os.PathLike[str] | np.ndarray,
    frames: np.ndarray,
    *,
    frame: int = 0,
    propagation: str = "static",
    feather: float = 0.0,
    resize_mode: str = "crop",
    fps: float | None = None,
    start: float = 0.0,
    end: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The mask of a clip as the model sees it: `(binary [F, H, W] bool, feathered [F, H, W] float32)`.

    Args:
        mask: a file (image or video, see `load_mask`), a still `[H, W]` / `[H, W, 3 or 4]` image, or per-frame
            masks `[F, H, W]` / `[F, H, W, 3 or 4]`; any size (it is resized like the video, by `resize_mode`).
        frames: the clip the model edits, uint8 `[F, H, W, 3]`.
        frame: which of `frames` a still mask was drawn on.
        propagation: how a still mask covers the clip, "static" or "track".
        feather: the width of the soft edge inside the mask, in pixels of `frames`.
        fps, start, end: how the source was read, so that a mask video is read the same way.
    """
    num_frames, height, width = frames.shape[:3]
    if isinstance(mask, str | os.PathLike):
        mask = load_mask(mask, fps=fps, start=start, end=end, max_frames=num_frames)
    mask = np.asarray(mask)
    if mask.size == 0:
        raise MaskError(f"the mask has no pixels (shape {tuple(mask.shape)})")
    still = mask.ndim == 2 or (mask.ndim == 3 and mask.shape[-1] in (3, 4))
    if still:
        planes = mask_from_image(mask)[None]  # 1, H, W
    elif mask.ndim in (3, 4):
        planes = np.stack([mask_from_image(m) for m in mask])  # F, H, W
        if len(planes) < num_frames:
            raise MaskError(f"the mask has {len(planes)} frames but the clip has {num_frames}: give one per frame")
        planes = planes[:num_frames]
    else:
        raise MaskError(f"a mask must be an image or one image per frame, got shape {tuple(mask.shape)}")
    planes = resize_mask(planes, height, width, resize_mode)
    if not planes.any():
        raise MaskError("the mask is empty: paint the region to edit (white or painted pixels), or give no mask")
    binary = propagate_mask(planes[0], frames, frame=frame, mode=propagation) if still else planes
    return binary, feather_mask(binary, feather)
