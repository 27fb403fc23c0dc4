"""ICVE's in-context transformer: HunyuanVideo's DiT reading [source, target, text] as one sequence.

The idea of "In-Context Learning with Unpaired Clips for Instruction-based Video Editing" in one place:

* the clean source latents and the noisy target latents go through the same patch embedder and are concatenated
  along the token axis, source first; text tokens follow, and attention is full over all of them (text padding
  masked as keys);
* source tokens are modulated (AdaLN shift/scale/gate) with the conditioning of timestep 0 - time(0) + pooled text
  + guidance - because they are clean; target and text tokens get the real timestep's conditioning;
* source and target share the same 3-D RoPE positions (`source_rope="shared"`), so the model sees two videos of
  one space-time grid; `"offset"` instead places the source frames after the target's;
* only target tokens are projected out: the prediction is for the target alone.

ICVE predicts the target's flow-matching velocity (`prediction="velocity"`). Two options read the output as the
clean target instead, turned into the same velocity, so that training and sampling are unchanged:
`"sample"` is the clean target itself, which a small model can learn where tokens are wide (a velocity carries the
noise in all of a token's channels, while clean clips lie on far fewer dimensions); `"source_change"` is the change
from the source to the clean target, so an untrained model (its output layer starts at zero) already returns its
source and training only has to learn what the instruction changes.

The module is diffusers' `HunyuanVideoTransformer3DModel` built with token-replace blocks, whose per-token t=0
modulation of the leading tokens is exactly the source-token modulation above. The parameter names are
unchanged, so HunyuanVideo and ICVE weights load as they are. Without a source the forward is HunyuanVideo's plain
text-to-video forward.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import get_1d_rotary_pos_embed
from diffusers.models.modeling_outputs import Transformer2DModelOutput

# DiffusionPipeline.from_pretrained finds how to load a component defined outside diffusers by looking up its base
# classes in the component's own module: ModelMixin must be a name here.
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401
from diffusers.models.transformers.transformer_hunyuan_video import HunyuanVideoTransformer3DModel
from diffusers.utils import apply_lora_scale
from torch import nn

SOURCE_ROPE_MODES = ("shared", "offset")
PREDICTIONS = ("velocity", "sample", "source_change")
# A velocity made from a clean-target guess divides by sigma; no sampler step gets near this, and the rare training
# draw below it must not make an unbounded loss.
MIN_SIGMA = 0.02


class InContextRotaryPosEmbed(nn.Module):
    """3-D RoPE over a latent grid whose frame positions can start at an offset.

    Returns diffusers' HunyuanVideo (cos, sin) layout: each [F * H * W, head_dim], real/imag interleaved.
    """

    def __init__(self, patch_size: int, patch_size_t: int, rope_dim: tuple[int, ...], theta: float) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.patch_size_t = patch_size_t
        self.rope_dim = tuple(rope_dim)
        self.theta = theta

    def forward(self, latents: torch.Tensor, frame_offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        _, _, num_frames, height, width = latents.shape  # B, C, F, H, W
        sizes = (num_frames // self.patch_size_t, height // self.patch_size, width // self.patch_size)
        axes = [torch.arange(n, device=latents.device, dtype=torch.float32) for n in sizes]
        axes[0] = axes[0] + frame_offset
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0).reshape(3, -1)  # 3, F*H*W
        freqs = [
            get_1d_rotary_pos_embed(dim, grid[i], self.theta, use_real=True) for i, dim in enumerate(self.rope_dim)
        ]
        return torch.cat([cos for cos, _ in freqs], dim=1), torch.cat([sin for _, sin in freqs], dim=1)


class ICVETransformer3DModel(HunyuanVideoTransformer3DModel):
    r"""HunyuanVideo's transformer with ICVE's in-context forward.

    Args:
        source_rope (`str`, defaults to `"shared"`): `"shared"` gives source tokens the target's RoPE positions (ICVE);
            `"offset"` places the source frames after the target's on the time axis.
        image_condition_type (`str`, *optional*): always token-replace blocks; `None` is accepted so that
            HunyuanVideo's text-to-video configs load unchanged.
        The other arguments are those of [`HunyuanVideoTransformer3DModel`].
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 16,
        out_channels: int = 16,
        num_attention_heads: int = 24,
        attention_head_dim: int = 128,
        num_layers: int = 20,
        num_single_layers: int = 40,
        num_refiner_layers: int = 2,
        mlp_ratio: float = 4.0,
        patch_size: int = 2,
        patch_size_t: int = 1,
        qk_norm: str = "rms_norm",
        guidance_embeds: bool = True,
        text_embed_dim: int = 4096,
        pooled_projection_dim: int = 768,
        rope_theta: float = 256.0,
        rope_axes_dim: tuple[int, ...] = (16, 56, 56),
        image_condition_type: str | None = "token_replace",
        source_rope: str = "shared",
        prediction: str = "velocity",
    ) -> None:
        # HunyuanVideo's text-to-video configs say `None`: the blocks are token-replace blocks either way, with the
        # same parameters. Image-latent concatenation changes the input layer and is not an in-context model.
        if image_condition_type not in (None, "token_replace"):
            raise ValueError(f"image_condition_type={image_condition_type!r} is not supported by the in-context model")
        if source_rope not in SOURCE_ROPE_MODES:
            raise ValueError(f"source_rope={source_rope!r} is not one of {SOURCE_ROPE_MODES}")
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction={prediction!r} is not one of {PREDICTIONS}")
        if sum(rope_axes_dim) != attention_head_dim:
            raise ValueError(
                f"rope_axes_dim={tuple(rope_axes_dim)} must sum to attention_head_dim={attention_head_dim}"
            )
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim,
            num_layers=num_layers,
            num_single_layers=num_single_layers,
            num_refiner_layers=num_refiner_layers,
            mlp_ratio=mlp_ratio,
            patch_size=patch_size,
            patch_size_t=patch_size_t,
            qk_norm=qk_norm,
            guidance_embeds=guidance_embeds,
            text_embed_dim=text_embed_dim,
            pooled_projection_dim=pooled_projection_dim,
            rope_theta=rope_theta,
            rope_axes_dim=rope_axes_dim,
            # Token-replace blocks modulate the leading N tokens with their own embedding: the source tokens.
            image_condition_type="token_replace",
        )
        self.rope = InContextRotaryPosEmbed(patch_size, patch_size_t, rope_axes_dim, rope_theta)
        if prediction == "source_change":
            nn.init.zeros_(self.proj_out.weight)  # no change yet: the untrained model returns its source
            nn.init.zeros_(self.proj_out.bias)

    def _check_latents(self, target: torch.Tensor, source: torch.Tensor | None) -> None:
        p, p_t = self.config.patch_size, self.config.patch_size_t
        if target.ndim != 5:
            raise ValueError(f"target latents must be [B, C, F, H, W], got shape {tuple(target.shape)}")
        _, channels, frames, height, width = target.shape
        if channels != self.config.in_channels:
            raise ValueError(f"target latents have {channels} channels, the model takes {self.config.in_channels}")
        if frames % p_t or height % p or width % p:
            raise ValueError(f"latent size {(frames, height, width)} is not divisible by the patch size {(p_t, p, p)}")
        if source is not None:
            if source.ndim != 5:
                raise ValueError(f"source latents must be [B, C, F, H, W], got shape {tuple(source.shape)}")
            b, c, f, h, w = source.shape
            if (b, c, h, w) != (target.shape[0], channels, height, width) or f % p_t:
                raise ValueError(
                    f"source latents {tuple(source.shape)} do not fit target latents {tuple(target.shape)}: batch, "
                    "channels, height and width must match"
                )

    def _positions(self, source: torch.Tensor | None, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        target_cos, target_sin = self.rope(target)
        if source is None:
            return target_cos, target_sin
        offset = 0 if self.config.source_rope == "shared" else target.shape[2] // self.config.patch_size_t
        source_cos, source_sin = self.rope(source, frame_offset=offset)
        return torch.cat([source_cos, target_cos]), torch.cat([source_sin, target_sin])

    @staticmethod
    def _velocity_from_clean(clean: torch.Tensor, target: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        # x_sigma = (1 - sigma) * x0 + sigma * noise, so the velocity noise - x0 is (x_sigma - x0) / sigma.
        sigma = (timestep.float() / 1000.0).clamp(min=MIN_SIGMA).reshape(-1, 1, 1, 1, 1)  # B, 1, 1, 1, 1
        return (target.float() - clean.float()) / sigma

    @apply_lora_scale("attention_kwargs")
    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
        pooled_projections: torch.Tensor,
        guidance: torch.Tensor | None = None,
        source_latents: torch.Tensor | None = None,
        attention_kwargs: dict | None = None,
        return_dict: bool = True,
    ) -> tuple[torch.Tensor] | Transformer2DModelOutput:
        r"""Predict the flow-matching velocity of the target (with `prediction="sample"` or `"source_change"`, made
        from the predicted clean target or its change from the source).

        Args:
            hidden_states: noisy target latents `[B, C, F, H, W]`.
            timestep: `[B]` on the 0..1000 scale.
            encoder_hidden_states: text token states `[B, L, text_embed_dim]`.
            encoder_attention_mask: `[B, L]`, 1 for real tokens, 0 for padding.
            pooled_projections: pooled text vector `[B, pooled_projection_dim]`.
            guidance: embedded guidance `[B]`, already multiplied by 1000 (guidance-distilled models).
            source_latents: clean source latents `[B, C, F', H, W]`; `None` runs the plain text-to-video forward.
        """
        target, source = hidden_states, source_latents
        self._check_latents(target, source)
        if self.config.prediction == "source_change" and (source is None or source.shape != target.shape):
            shape = None if source is None else tuple(source.shape)
            raise ValueError(f"prediction='source_change' needs source latents shaped like the target, got {shape}")
        batch_size, _, num_frames, height, width = target.shape
        p, p_t = self.config.patch_size, self.config.patch_size_t

        # 1. Conditioning: the real timestep for target and text, timestep 0 for the clean source.
        temb, _ = self.time_text_embed(timestep, pooled_projections, guidance)
        source_temb = temb
        if source is not None:
            source_temb, _ = self.time_text_embed(torch.zeros_like(timestep), pooled_projections, guidance)

        # 2. Tokens: [source, target] share one patch embedder; text goes through the token refiner.
        target_tokens = self.x_embedder(target)  # B, N_tgt, D
        num_source_tokens = 0
        tokens = target_tokens
        if source is not None:
            source_tokens = self.x_embedder(source.to(target_tokens.dtype))  # B, N_src, D
            num_source_tokens = source_tokens.shape[1]
            tokens = torch.cat([source_tokens, target_tokens], dim=1)  # B, N_src + N_tgt, D
        text = self.context_embedder(encoder_hidden_states, timestep, encoder_attention_mask)
        rotary = self._positions(source, target)

        # 3. Keys are masked where the text is padding; video tokens are always valid. An all-valid mask is dropped
        # so that fused attention kernels can be used.
        attention_mask = None
        text_mask = encoder_attention_mask.bool()
        if not bool(text_mask.all()):
            video_mask = text_mask.new_ones(batch_size, tokens.shape[1])
            attention_mask = torch.cat([video_mask, text_mask], dim=1)[:, None, None, :]  # B, 1, 1, N + L

        # 4. Double- then single-stream blocks; the leading `num_source_tokens` tokens get the t=0 modulation.
        block_args = (temb, attention_mask, rotary, source_temb, num_source_tokens)
        for block in [*self.transformer_blocks, *self.single_transformer_blocks]:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                tokens, text = self._gradient_checkpointing_func(block, tokens, text, *block_args)
            else:
                tokens, text = block(tokens, text, *block_args)

        # 5. Only target tokens are projected out.
        target_tokens = tokens[:, num_source_tokens:]
        target_tokens = self.proj_out(self.norm_out(target_tokens, temb))
        f, h, w = num_frames // p_t, height // p, width // p
        output = target_tokens.reshape(batch_size, f, h, w, -1, p_t, p, p)  # B, F', H', W', C, pt, p, p
        output = output.permute(0, 4, 1, 5, 2, 6, 3, 7)  # B, C, F', pt, H', p, W', p
        output = output.flatten(6, 7).flatten(4, 5).flatten(2, 3)  # B, C, F, H, W
        if self.config.prediction != "velocity":
            clean = output.float() if self.config.prediction == "sample" else source.float() + output.float()
            output = self._velocity_from_clean(clean, target, timestep).to(output.dtype)

        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)
