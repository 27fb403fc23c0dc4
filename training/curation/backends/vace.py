"""An inpainter over Wan-VACE (diffusers' `WanVACEPipeline`) loaded from a local folder.

VACE re-renders the masked region of a clip from a caption: the pipeline gets the clip with the masked region
greyed, the mask as a video (white = generate) and the caption. Its constraints are met around the call and
undone after it: the clip is scaled down to at most `max_area` pixels, padded (edge pixels) to a multiple of the
VAE's spatial factor times the patch size (16 for Wan 2.1), and padded with copies of its last frame to 4k+1
frames; the result is cropped and scaled back, and only its pixels inside the mask are kept.

Prompts are encoded here the way Wan's pipelines encode them (clean, tokenize to a fixed length, zero the embedding
past the last token) so that `ftfy`, which Wan's prompt cleaning imports, is used when installed and not required.
"""

from __future__ import annotations

import html
import importlib.util
import logging
import math
import re

import cv2
import numpy as np
import torch
from PIL import Image

from .base import BackendConfig
from .local_models import model_folder, resolve_device, resolve_dtype

logger = logging.getLogger(__name__)

GREY = 128  # VACE's neutral fill for the region to generate (127.5 in the original code, 128 as an image)


def clean_prompt(text: str) -> str:
    """Wan's prompt cleaning: mojibake fixed (when ftfy is installed), HTML entities decoded, whitespace collapsed."""
    if importlib.util.find_spec("ftfy") is not None:
        import ftfy

        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


class VaceInpainter:
    """`Inpainter` over the Wan-VACE pipeline saved in the folder `config.model`.

    num_inference_steps, guidance_scale, negative_prompt, conditioning_scale: passed to the pipeline.
    max_area: the most pixels per frame the model is run at; larger clips are scaled down and back up.
    max_sequence_length: the prompt's token length (Wan uses 512).
    device, dtype: where and in what precision the pipeline runs (default: the GPU in bf16 if there is one); the
    VAE always runs in fp32, as Wan's VAE loses detail in half precision.
    """

    def __init__(
        self,
        config: BackendConfig,
        *,
        num_inference_steps: int = 30,
        guidance_scale: float = 5.0,
        negative_prompt: str = "",
        conditioning_scale: float = 1.0,
        max_area: int | None = 480 * 832,
        max_sequence_length: int = 512,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        # Checked before the heavy imports, so that a wrong path fails at once.
        folder = model_folder(config, "inpainter")

        from diffusers import WanVACEPipeline

        self.name = f"VACE {folder.name}"
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.negative_prompt = negative_prompt
        self.conditioning_scale = conditioning_scale
        self.max_area = max_area
        self.max_sequence_length = max_sequence_length
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.pipe = WanVACEPipeline.from_pretrained(
            folder, dtype=self.dtype, use_safetensors=True, local_files_only=True
        )
        self.pipe.vae.to(torch.float32)
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.spatial_multiple = self.pipe.vae_scale_factor_spatial * self.pipe.transformer.config.patch_size[1]
        self.temporal_factor = self.pipe.vae_scale_factor_temporal
        self._negative_embeds: torch.Tensor | None = None
        logger.info("loaded %s on %s in %s", folder, self.device, self.dtype)

    @torch.inference_mode()
    def encode_prompt(self, text: str) -> torch.Tensor:
        """[1, max_sequence_length, dim] text embeddings, zero past the prompt's last token."""
        tokens = self.pipe.tokenizer(
            [clean_prompt(text)],
            padding="max_length",
            max_length=self.max_sequence_length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        ids, mask = tokens.input_ids.to(self.device), tokens.attention_mask.to(self.device)
        hidden = self.pipe.text_encoder(ids, mask).last_hidden_state
        length = int(mask.gt(0).sum())
        embeds = torch.zeros_like(hidden)
        embeds[:, :length] = hidden[:, :length]
        return embeds.to(self.pipe.transformer.dtype)

    def negative_embeds(self) -> torch.Tensor:
        if self._negative_embeds is None:
            self._negative_embeds = self.encode_prompt(self.negative_prompt)
        return self._negative_embeds

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """The frame size the model runs at, before padding: the clip's, or smaller to fit `max_area`."""
        if self.max_area is None or height * width <= self.max_area:
            return height, width
        scale = math.sqrt(self.max_area / (height * width))
        return max(1, int(height * scale)), max(1, int(width * scale))

    def inpaint(self, frames: np.ndarray, mask: np.ndarray, caption: str, seed: int, **hints: object) -> np.ndarray:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
            raise ValueError(f"frames must be uint8 [F, H, W, 3] with F >= 1, got {frames.dtype} {frames.shape}")
        if mask.shape != frames.shape[:3]:
            raise ValueError(f"mask must be bool {frames.shape[:3]}, got {mask.shape}")
        mask = mask.astype(bool)
        if not mask.any():
            return frames.copy()
        count, height, width = frames.shape[:3]

        work_h, work_w = self.working_size(height, width)
        video, work_mask = frames, mask
        if (work_h, work_w) != (height, width):
            video = np.stack([cv2.resize(frame, (work_w, work_h), interpolation=cv2.INTER_AREA) for frame in frames])
            # Area-averaged then any coverage: a downscaled mask never loses a thin part of the region.
            work_mask = np.stack(
                [cv2.resize(m.astype(np.float32), (work_w, work_h), interpolation=cv2.INTER_AREA) > 0 for m in mask]
            )
        pad_h = -work_h % self.spatial_multiple
        pad_w = -work_w % self.spatial_multiple
        pad_f = (self.temporal_factor - (count - 1) % self.temporal_factor) % self.temporal_factor
        video = np.pad(video, ((0, pad_f), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        work_mask = np.pad(work_mask, ((0, pad_f), (0, pad_h), (0, pad_w)), mode="edge")
        # The padded border is context, never generated.
        work_mask[:, work_h:, :] = False
        work_mask[:, :, work_w:] = False
        video = video.copy()
        video[work_mask] = GREY
        num_frames, run_h, run_w = video.shape[:3]

        use_guidance = self.guidance_scale > 1.0
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        output = self.pipe(
            video=[Image.fromarray(frame) for frame in video],
            mask=[Image.fromarray(m.astype(np.uint8) * 255) for m in work_mask],
            prompt_embeds=self.encode_prompt(caption),
            negative_prompt_embeds=self.negative_embeds() if use_guidance else None,
            conditioning_scale=self.conditioning_scale,
            height=run_h,
            width=run_w,
            num_frames=num_frames,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            generator=generator,
            output_type="np",
        ).frames[0]

        generated = (np.clip(output[:count, :work_h, :work_w], 0.0, 1.0) * 255.0).round().astype(np.uint8)
        if (work_h, work_w) != (height, width):
            generated = np.stack(
                [cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC) for frame in generated]
            )
        return np.where(mask[..., None], generated, frames)
