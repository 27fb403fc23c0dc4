"""Evaluation metrics for edited clips: temporal quality, background preservation and text alignment.

Clips are uint8 arrays shaped ``[F, H, W, 3]`` and masks bool arrays shaped ``[F, H, W]``.

| metric | reference | notes |
|---|---|---|
| `temporal_flickering` | VBench temporal flickering | exact definition |
| `consistency_score` | VBench subject / background consistency | exact definition, on given features |
| `subject_consistency_proxy` | VBench subject consistency (DINO) | proxy: EfficientNet-Lite0 features |
| `motion_smoothness_proxy` | VBench motion smoothness (AMT) | proxy: Farneback-flow midpoint interpolation |
| `psnr`, `ssim` | standard, data range 255 | optional mask, e.g. ``~edit_mask`` for background |
| `clip_text_alignment` | CLIP score | mean cosine of frame and text features |

Weights are read from safetensors files only.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

logger = logging.getLogger(__name__)

__all__ = [
    "EfficientNetLite0Features",
    "clip_text_alignment",
    "consistency_score",
    "motion_smoothness_proxy",
    "psnr",
    "ssim",
    "subject_consistency_proxy",
    "temporal_flickering",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DATA_RANGE = 255.0


def _check_clip(frames: np.ndarray, name: str = "frames", min_frames: int = 1) -> np.ndarray:
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{name} must be shaped [F, H, W, 3], got {frames.shape}")
    if frames.shape[0] < min_frames or frames.shape[1] == 0 or frames.shape[2] == 0:
        raise ValueError(f"{name} needs at least {min_frames} non-empty frame(s), got shape {frames.shape}")
    return frames


def _check_pair(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None) -> np.ndarray | None:
    _check_clip(a, "a")
    _check_clip(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    if mask is None:
        return None
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise ValueError("mask must be a bool numpy array")
    if mask.shape != a.shape[:3]:
        raise ValueError(f"mask must be shaped [F, H, W] = {a.shape[:3]}, got {mask.shape}")
    if not mask.any():
        raise ValueError("mask selects no pixels")
    return mask


def temporal_flickering(frames: np.ndarray) -> float:
    """VBench temporal flickering: ``(255 - mean_i mean|F[i+1] - F[i]|) / 255``; 1.0 means no change at all."""
    _check_clip(frames, min_frames=2)
    values = frames.astype(np.float64)
    per_pair = np.abs(values[1:] - values[:-1]).reshape(len(frames) - 1, -1).mean(axis=1)
    return float((DATA_RANGE - per_pair.mean()) / DATA_RANGE)


def consistency_score(features: np.ndarray) -> float:
    """VBench subject / background consistency over per-frame features ``[F, D]``.

    Each frame i >= 1 scores the mean of its clamped cosine similarity to the previous frame and to the first frame;
    the result is the mean over those frames.
    """
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[1] == 0:
        raise ValueError(f"features must be shaped [F, D], got {feats.shape}")
    if feats.shape[0] < 2:
        raise ValueError(f"features needs at least 2 frames, got {feats.shape[0]}")
    if not np.isfinite(feats).all():
        raise ValueError("features contains non-finite values")
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    # A zero vector has no direction; treating its cosine as 0 matches the clamped similarity of unrelated features.
    feats = feats / np.maximum(norms, 1e-12)
    to_prev = np.clip(np.sum(feats[1:] * feats[:-1], axis=1), 0.0, None)
    to_first = np.clip(feats[1:] @ feats[0], 0.0, None)
    return float(((to_prev + to_first) / 2.0).mean())


class EfficientNetLite0Features:
    """Global-average-pooled CNN features of ImageNet-normalised 224x224 frames.

    ``backbone`` maps ``[N, 3, H, W]`` to a feature map ``[N, C, h, w]`` (or already pooled ``[N, C]``); its weights
    are loaded from the local safetensors file ``weights_path`` with strict key matching. The published
    EfficientNet-Lite0 weights ship as a pickled ``.pth`` file, which is not loaded here: convert them to safetensors
    in a trusted environment first.
    """

    def __init__(
        self, backbone: nn.Module, weights_path: str | Path, image_size: int = 224, device: str | torch.device = "cpu"
    ) -> None:
        path = Path(weights_path)
        if path.suffix != ".safetensors":
            raise ValueError(f"weights_path must be a .safetensors file, got {path}")
        if not path.is_file():
            raise ValueError(f"weights_path does not exist: {path}")
        if image_size <= 0:
            raise ValueError(f"image_size must be positive, got {image_size}")
        backbone.load_state_dict(load_file(str(path), device="cpu"), strict=True)
        self.backbone = backbone.to(device).eval()
        self.image_size = image_size
        self.device = torch.device(device)
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        logger.info("loaded feature backbone weights from %s", path)

    @torch.no_grad()
    def __call__(self, frames: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """Return features ``[F, C]`` as float32."""
        _check_clip(frames)
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        size = (self.image_size, self.image_size)
        resized = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
        outputs = []
        for start in range(0, len(resized), batch_size):
            batch = torch.from_numpy(resized[start : start + batch_size]).to(self.device)
            batch = batch.permute(0, 3, 1, 2).float().div(255.0)
            out = self.backbone((batch - self._mean) / self._std)
            if out.ndim == 4:
                out = out.mean(dim=(2, 3))
            elif out.ndim != 2:
                raise ValueError(f"backbone must return [N, C, h, w] or [N, C], got shape {tuple(out.shape)}")
            outputs.append(out.float().cpu())
        return torch.cat(outputs).numpy()


def subject_consistency_proxy(frames: np.ndarray, extractor: EfficientNetLite0Features) -> float:
    """Proxy for VBench subject consistency: `consistency_score` on EfficientNet-Lite0 features instead of DINO."""
    _check_clip(frames, min_frames=2)
    return consistency_score(extractor(frames))


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _midpoint(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    flow = cv2.calcOpticalFlowFarneback(_gray(prev), _gray(nxt), None, 0.5, 3, 15, 3, 5, 1.2, 0)
    h, w = prev.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    half = 0.5 * flow
    # Backward warping with the flow sampled at the target pixel: a first-order stand-in for the midpoint flow.
    from_prev = cv2.remap(
        prev, grid_x - half[..., 0], grid_y - half[..., 1], cv2.INTER_LINEAR, None, cv2.BORDER_REPLICATE
    )
    from_next = cv2.remap(
        nxt, grid_x + half[..., 0], grid_y + half[..., 1], cv2.INTER_LINEAR, None, cv2.BORDER_REPLICATE
    )
    return (from_prev.astype(np.float64) + from_next.astype(np.float64)) / 2.0


def motion_smoothness_proxy(frames: np.ndarray) -> float:
    """Proxy for VBench motion smoothness, which interpolates with AMT.

    Each odd frame with two neighbours is predicted from frames i-1 and i+1 by warping both halfway along their
    Farneback optical flow and averaging; the score is ``(255 - mean|real - predicted|) / 255``.
    """
    _check_clip(frames, min_frames=3)
    errors = [
        np.abs(frames[i].astype(np.float64) - _midpoint(frames[i - 1], frames[i + 1])).mean()
        for i in range(1, len(frames) - 1, 2)
    ]
    return float((DATA_RANGE - np.mean(errors)) / DATA_RANGE)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB over whole clips (data range 255), or only over pixels where ``mask`` is True; inf when equal."""
    mask = _check_pair(a, b, mask)
    diff = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = diff.mean() if mask is None else diff[mask].mean()
    if mse == 0:
        return float("inf")
    return float(10.0 * math.log10(DATA_RANGE**2 / mse))


def _luma(frames: np.ndarray) -> np.ndarray:
    # BT.601 weights, as in the usual single-channel SSIM on RGB images.
    return frames.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    def blur(img: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(img, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """SSIM over whole clips on BT.601 luma, 11x11 Gaussian window (sigma 1.5), data range 255.

    The per-pixel SSIM map of every frame is averaged over all pixels, or only over pixels where ``mask`` is True.
    Identical clips score exactly 1.0.
    """
    mask = _check_pair(a, b, mask)
    if np.array_equal(a, b):
        return 1.0
    luma_a, luma_b = _luma(a), _luma(b)
    maps = np.stack([_ssim_map(luma_a[i], luma_b[i]) for i in range(len(a))])
    return float(maps.mean() if mask is None else maps[mask].mean())


def _as_features(output: object) -> torch.Tensor:
    # Some transformers versions wrap projected features in a model output instead of returning the tensor.
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    raise ValueError(f"unexpected CLIP feature output of type {type(output).__name__}")


@torch.no_grad()
def clip_text_alignment(
    frames: np.ndarray, text: str, model_path: str | Path, device: str | torch.device = "cpu", batch_size: int = 16
) -> float:
    """Mean cosine similarity between the CLIP image features of each frame and the CLIP text features of ``text``.

    ``model_path`` is a local folder with a safetensors CLIP checkpoint, its tokenizer and its image processor.
    """
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    _check_clip(frames)
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    path = Path(model_path)
    if not path.is_dir():
        raise ValueError(f"model_path must be a local CLIP folder, got {path}")
    model = CLIPModel.from_pretrained(str(path), use_safetensors=True, local_files_only=True).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    image_processor = CLIPImageProcessor.from_pretrained(str(path), local_files_only=True)

    max_length = model.config.text_config.max_position_embeddings
    tokens = tokenizer([text], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    text_features = _as_features(
        model.get_text_features(
            input_ids=tokens["input_ids"].to(device), attention_mask=tokens["attention_mask"].to(device)
        )
    )
    text_features = torch.nn.functional.normalize(text_features.float(), dim=-1)

    similarities = []
    for start in range(0, len(frames), batch_size):
        pixels = image_processor(images=list(frames[start : start + batch_size]), return_tensors="pt")["pixel_values"]
        image_features = _as_features(model.get_image_features(pixel_values=pixels.to(device)))
        image_features = torch.nn.functional.normalize(image_features.float(), dim=-1)
        similarities.append((image_features @ text_features.T).squeeze(-1).cpu())
    return float(torch.cat(similarities).mean().clamp(-1.0, 1.0))
