"""Memory plans: where the model's parts live while an edit runs, and an estimate to choose by.

Plans, from fastest to leanest:
* `none`: every part resident on the device.
* `model_offload`: parts wait on the CPU and move to the device one at a time (text encoders, transformer, VAE).
* `group_offload`: the transformer's blocks and the Llama encoder's layers stream to the device one at a time (with a
  side CUDA stream when there is one); the VAE moves whole. Needs little more than one block plus activations.
* `auto`: the fastest plan whose estimate fits the free device memory (or a cap such as 24 GiB).

VAE tiling is chosen beside the plan: the untiled decode of a long, large clip needs more memory than the rest.
The estimate is printed before anything is loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

logger = logging.getLogger(__name__)

PLANS = ("auto", "none", "model_offload", "group_offload")
GiB = 1024**3

# Peak live activations of one transformer block, in units of tokens x hidden size: a single-stream block holds its
# input, the fused qkv+mlp projection (7x), the attention output and the concatenation feeding linear2 (5x) at once.
_ACTIVATION_WIDTHS = 20
# Peak of HunyuanVideo's VAE decoder per output pixel-frame, in elements: its widest up-block runs at 128 channels
# at full resolution, with a few tensors of that size alive together.
_VAE_DECODE_ELEMENTS_PER_PIXEL = 128 * 6
# Tiled decoding works on 256x256 tiles of 16 frames at a time (diffusers' HunyuanVideo VAE tiling).
_VAE_TILE_PIXELS = 256 * 256 * 16
# Allocator fragmentation and CUDA context: what a plan should leave free.
_HEADROOM = 1.15


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes each part needs on the device."""

    transformer: int
    text_encoder: int
    vae: int
    activations: int
    vae_decode: int
    vae_decode_tiled: int

    @property
    def weights(self) -> int:
        return self.transformer + self.text_encoder + self.vae

    def needs(self, plan: str, vae_tiling: bool) -> int:
        """Peak device bytes under `plan`."""
        decode = self.vae + (self.vae_decode_tiled if vae_tiling else self.vae_decode)
        if plan == "none":
            denoise = self.weights + self.activations
            decode += self.transformer + self.text_encoder
            encode = self.weights
        elif plan == "model_offload":
            denoise = self.transformer + self.activations
            encode = self.text_encoder
        else:  # group_offload: a couple of blocks in flight, and the text encoder's embeddings
            denoise = self.transformer // 20 + self.activations
            encode = self.text_encoder // 8
        return int(max(encode, denoise, decode) * _HEADROOM)

    def describe(self) -> str:
        parts = [
            f"transformer {self.transformer / GiB:.1f}",
            f"text encoders {self.text_encoder / GiB:.1f}",
            f"VAE {self.vae / GiB:.2f}",
            f"activations {self.activations / GiB:.1f}",
            f"VAE decode {self.vae_decode / GiB:.1f} ({self.vae_decode_tiled / GiB:.1f} tiled)",
        ]
        return "estimated GiB: " + ", ".join(parts)


def parameter_bytes(model: nn.Module, bytes_per_parameter: float) -> int:
    return int(sum(p.numel() for p in model.parameters()) * bytes_per_parameter)


def estimate_memory(
    *,
    transformer_parameters: int,
    transformer_hidden: int,
    transformer_bytes_per_parameter: float,
    text_encoder_bytes: int,
    vae_bytes: int,
    latent_tokens: int,
    text_tokens: int,
    frames: int,
    height: int,
    width: int,
    activation_bytes: int = 2,
    batch: int = 1,
) -> MemoryEstimate:
    """Estimate an edit's memory. `latent_tokens` counts the video tokens of one clip (source and target double it);
    `batch` clips go through the transformer at once (2 when guidance batches its branches)."""
    tokens = batch * (2 * latent_tokens + text_tokens)
    pixels = frames * height * width
    return MemoryEstimate(
        transformer=int(transformer_parameters * transformer_bytes_per_parameter),
        text_encoder=text_encoder_bytes,
        vae=vae_bytes,
        activations=tokens * transformer_hidden * _ACTIVATION_WIDTHS * activation_bytes,
        vae_decode=pixels * _VAE_DECODE_ELEMENTS_PER_PIXEL * activation_bytes,
        vae_decode_tiled=min(pixels, _VAE_TILE_PIXELS) * _VAE_DECODE_ELEMENTS_PER_PIXEL * activation_bytes,
    )


@dataclass(frozen=True)
class MemoryChoice:
    plan: str
    vae_tiling: bool
    needs: int


def choose_plan(estimate: MemoryEstimate, available: int) -> MemoryChoice:
    """The fastest plan that fits `available` bytes; untiled VAE decoding when it fits too."""
    for plan in ("none", "model_offload", "group_offload"):
        for tiling in (False, True):
            needs = estimate.needs(plan, tiling)
            if needs <= available:
                return MemoryChoice(plan, tiling, needs)
    needs = estimate.needs("group_offload", True)
    logger.warning(
        "even the leanest plan needs about %.1f GiB and %.1f GiB is available: expect out-of-memory errors; "
        "use fewer frames, a smaller size or quantization",
        needs / GiB,
        available / GiB,
    )
    return MemoryChoice("group_offload", True, needs)


def available_memory(device: torch.device, cap_gib: float | None = None) -> int:
    """Free bytes on `device` (CUDA), capped at `cap_gib` if given; the cap alone on other devices."""
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
    cap = int(cap_gib * GiB) if cap_gib is not None else None
    if free is None and cap is None:
        raise ValueError(f"the auto memory plan needs a CUDA device or a memory cap; got device {device}")
    return min(x for x in (free, cap) if x is not None)


def apply_memory_plan(pipe, plan: str, device: torch.device) -> None:
    """Place the pipeline's parts for `plan` ("none", "model_offload" or "group_offload")."""
    if plan not in PLANS or plan == "auto":
        raise ValueError(f"memory plan {plan!r} must be one of {PLANS[1:]} here (auto is resolved before)")
    if plan == "none":
        pipe.to(device)
    elif plan == "model_offload":
        pipe.enable_model_cpu_offload(device=device)
    else:
        from diffusers.hooks import apply_group_offloading

        # Block level: a module's block lists stream one block at a time, its other layers move with the first.
        # The text encoders are offloaded model by model, so that the Llama's layer list is found; the VAE,
        # which has no block list, moves whole.
        options = dict(
            onload_device=device, offload_device=torch.device("cpu"), offload_type="block_level",
            num_blocks_per_group=1, use_stream=device.type == "cuda",
        )  # fmt: skip
        pipe.transformer.enable_group_offload(**options)
        for module in [*pipe.text_encoder.children(), pipe.vae]:
            apply_group_offloading(module, **options)
    pipe.memory_plan = plan
    logger.info("memory plan: %s on %s", plan, device)
