"""Tests for the evaluation metrics on hand-computed values and tiny random models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from training.metrics import (
    EfficientNetLite0Features,
    clip_text_alignment,
    consistency_score,
    motion_smoothness_proxy,
    psnr,
    ssim,
    subject_consistency_proxy,
    temporal_flickering,
)


def _clip(frames: int = 4, height: int = 8, width: int = 8, value: int = 0) -> np.ndarray:
    return np.full((frames, height, width, 3), value, dtype=np.uint8)


def _textured(frames: int = 5, size: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(frames, size, size, 3), dtype=np.uint8)


# --- temporal flickering ---


def test_flickering_constant_clip_is_one() -> None:
    assert temporal_flickering(_clip(value=77)) == 1.0


def test_flickering_alternating_extremes_is_zero() -> None:
    clip = _clip(frames=4)
    clip[1::2] = 255
    assert temporal_flickering(clip) == 0.0


def test_flickering_hand_computed() -> None:
    # Pair diffs: 51 then 0, mean 25.5 -> (255 - 25.5) / 255 = 0.9.
    clip = np.stack([_clip(1)[0], _clip(1, value=51)[0], _clip(1, value=51)[0]])
    assert temporal_flickering(clip) == pytest.approx(0.9)


def test_flickering_uint8_does_not_wrap() -> None:
    clip = np.stack([_clip(1, value=10)[0], _clip(1, value=0)[0]])
    assert temporal_flickering(clip) == pytest.approx((255 - 10) / 255)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((1, 4, 4, 3), dtype=np.uint8),
        np.zeros((3, 4, 4), dtype=np.uint8),
        np.zeros((3, 4, 4, 3), dtype=np.float32),
    ],
)
def test_flickering_rejects_bad_clips(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="frames"):
        temporal_flickering(bad)


# --- consistency ---


def test_consistency_identical_features_is_one() -> None:
    assert consistency_score(np.tile([[1.0, 2.0, 3.0]], (4, 1))) == pytest.approx(1.0)


def test_consistency_hand_computed() -> None:
    # f1 vs f0: cos 0 for both terms -> 0; f2 vs f1: cos 0, f2 vs f0: cos 1 -> 0.5; mean 0.25.
    feats = np.array([[1.0, 0.0], [0.0, 3.0], [2.0, 0.0]])
    assert consistency_score(feats) == pytest.approx(0.25)


def test_consistency_clamps_negative_cosines() -> None:
    feats = np.array([[1.0, 0.0], [-1.0, 0.0]])
    assert consistency_score(feats) == 0.0


def test_consistency_diagonal_hand_computed() -> None:
    c = 1 / math.sqrt(2)
    feats = np.array([[1.0, 0.0], [1.0, 1.0]])
    assert consistency_score(feats) == pytest.approx(c)


@pytest.mark.parametrize("bad", [np.ones((1, 4)), np.ones(4), np.ones((3, 0)), np.array([[1.0, np.nan], [1.0, 0.0]])])
def test_consistency_rejects_bad_features(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="features"):
        consistency_score(bad)


# --- feature extractor ---


class _TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, stride=4, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=4, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(self.conv1(x)))


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("cnn") / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in _TinyCNN().state_dict().items()}, str(path))
    return path


def test_extractor_loads_safetensors_and_pools(tiny_weights: Path) -> None:
    extractor = EfficientNetLite0Features(_TinyCNN(), tiny_weights)
    feats = extractor(_textured(frames=3, size=40), batch_size=2)
    assert feats.shape == (3, 6)
    assert feats.dtype == np.float32
    assert np.isfinite(feats).all()
    saved = load_file(str(tiny_weights))
    for key, value in extractor.backbone.state_dict().items():
        assert torch.equal(value, saved[key])


def test_extractor_resizes_any_frame_size(tiny_weights: Path) -> None:
    extractor = EfficientNetLite0Features(_TinyCNN(), tiny_weights)
    small = extractor(_textured(frames=2, size=16))
    assert small.shape == (2, 6)


def test_extractor_rejects_non_safetensors(tmp_path: Path) -> None:
    pth = tmp_path / "weights.pth"
    pth.write_bytes(b"")
    with pytest.raises(ValueError, match="weights_path"):
        EfficientNetLite0Features(_TinyCNN(), pth)
    with pytest.raises(ValueError, match="weights_path"):
        EfficientNetLite0Features(_TinyCNN(), tmp_path / "missing.safetensors")


def test_subject_consistency_proxy_static_clip_is_one(tiny_weights: Path) -> None:
    extractor = EfficientNetLite0Features(_TinyCNN(), tiny_weights)
    clip = np.repeat(_textured(frames=1, size=24), 3, axis=0)
    assert subject_consistency_proxy(clip, extractor) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="frames"):
        subject_consistency_proxy(clip[:1], extractor)


# --- motion smoothness ---


def test_motion_smoothness_static_clip_is_one() -> None:
    clip = np.repeat(_textured(frames=1, size=32), 5, axis=0)
    # Farneback finds sub-pixel flow even between identical noise frames, so the warp is not exactly the identity.
    assert motion_smoothness_proxy(clip) == pytest.approx(1.0, abs=1e-3)


def test_motion_smoothness_noise_is_lower() -> None:
    static = np.repeat(_textured(frames=1, size=32), 5, axis=0)
    assert motion_smoothness_proxy(_textured(frames=5, size=32, seed=1)) < motion_smoothness_proxy(static) - 0.1


def test_motion_smoothness_needs_three_frames() -> None:
    with pytest.raises(ValueError, match="frames"):
        motion_smoothness_proxy(_textured(frames=2))


# --- psnr / ssim ---


def test_psnr_ssim_identical() -> None:
    clip = _textured()
    assert psnr(clip, clip.copy()) == math.inf
    assert ssim(clip, clip.copy()) == 1.0


def test_psnr_hand_computed() -> None:
    # Uniform error of 1 -> MSE 1 -> 20 * log10(255).
    assert psnr(_clip(value=10), _clip(value=11)) == pytest.approx(20 * math.log10(255))


def test_ssim_different_is_below_one() -> None:
    a = _textured(size=32)
    b = _textured(size=32, seed=5)
    assert -1.0 <= ssim(a, b) < 0.5
    noisy = np.clip(a.astype(int) + np.random.default_rng(2).integers(-8, 9, a.shape), 0, 255).astype(np.uint8)
    assert 0.5 < ssim(a, noisy) < 1.0


def test_masked_metrics_ignore_edit_region() -> None:
    a = _textured(frames=2, size=32)
    b = a.copy()
    edit_mask = np.zeros(a.shape[:3], dtype=bool)
    edit_mask[:, 8:16, 8:16] = True
    b[edit_mask] = 255 - b[edit_mask]
    assert psnr(a, b, mask=~edit_mask) == math.inf
    assert psnr(a, b, mask=edit_mask) < 20
    assert psnr(a, b) > psnr(a, b, mask=edit_mask)
    # SSIM windows straddle the mask border, so only far-away background is exactly untouched.
    far = np.zeros_like(edit_mask)
    far[:, 24:, 24:] = True
    assert ssim(a, b, mask=far) == pytest.approx(1.0)
    assert ssim(a, b, mask=edit_mask) < ssim(a, b, mask=far)


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_pair_metrics_reject_bad_inputs(metric) -> None:
    a = _clip()
    with pytest.raises(ValueError, match="mask"):
        metric(a, a, mask=np.zeros(a.shape[:3], dtype=bool))
    with pytest.raises(ValueError, match="mask"):
        metric(a, a, mask=np.ones((1, 8, 8), dtype=bool))
    with pytest.raises(ValueError, match="same shape"):
        metric(a, _clip(frames=3))
    with pytest.raises(ValueError, match="b must be uint8"):
        metric(a, a.astype(np.float32))


# --- CLIP ---


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("clip")
    words = ["<pad>", "<unk>", "<bos>", "<eos>", "a", "red", "car", "on", "the", "road"]
    vocab = {w: i for i, w in enumerate(words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>"
    )
    tokenizer.save_pretrained(str(path))

    text_config = {
        "vocab_size": len(words),
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 16,
        "pad_token_id": vocab["<pad>"],
        "bos_token_id": vocab["<bos>"],
        "eos_token_id": vocab["<eos>"],
    }
    vision_config = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    }
    torch.manual_seed(0)
    config = CLIPConfig(text_config=text_config, vision_config=vision_config, projection_dim=8)
    CLIPModel(config).save_pretrained(str(path), safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(str(path))
    return path


def test_clip_text_alignment_tiny_model(tiny_clip_dir: Path) -> None:
    assert any(p.suffix == ".safetensors" for p in tiny_clip_dir.iterdir())
    assert "architectures" in json.loads((tiny_clip_dir / "config.json").read_text())
    score = clip_text_alignment(_textured(frames=3, size=40), "a red car on the road", tiny_clip_dir, batch_size=2)
    assert isinstance(score, float)
    assert -1.0 <= score <= 1.0


def test_clip_text_alignment_rejects_bad_inputs(tiny_clip_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="text"):
        clip_text_alignment(_textured(frames=1), "  ", tiny_clip_dir)
    with pytest.raises(ValueError, match="model_path"):
        clip_text_alignment(_textured(frames=1), "a car", tmp_path / "missing")
