"""A lossless latent codec that packs pixels into channels: the small demo model's "VAE".

A learned video autoencoder is the costliest part of a latent video model to train. At the demo model's scale the
transformer only needs what an autoencoder gives it, a short sequence of wide tokens, and packing raw pixels gives
exactly that with no training and no reconstruction error: each `s x s` patch of `t` consecutive frames becomes one
latent pixel of `3 * t * s * s` channels. The frame layout follows causal video VAEs (HunyuanVideo's): the first
frame stands alone (repeated `t` times to fill its latent frame), then every `t` frames make one latent frame, so
`F = k * t + 1` frames become `k + 1` latent frames. With s = 8 and t = 4, a 64x64 clip of 9 frames is 3 x 8 x 8
latent pixels: 192 tokens at patch size 1, what an 8x/4x autoencoder would give.

A transformer's tokens must fit through its hidden width: a 768-value token in a 256-wide model cannot be passed on,
let alone denoised, value by value. With `projection_dim` the packed patches are projected onto their top principal
components, fitted once from training clips in closed form (`fit_projection`): a fixed linear codec, lossy only by
what those components leave out (about 36 dB PSNR at 128 of 768 on the procedural world), and still nothing to
train by gradient descent.

The interface is the part of diffusers' `AutoencoderKL*` that the pipeline uses: `encode(x).latent_dist.mode()`,
`decode(z).sample`, and `scaling_factor`, `spatial_compression_ratio`, `temporal_compression_ratio` in the config.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin


@dataclass
class PackedLatents:
    """The codec's "posterior": a point mass, so its mode and its samples are the packed pixels themselves."""

    latents: torch.Tensor

    def mode(self) -> torch.Tensor:
        return self.latents

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.latents


@dataclass
class EncoderOutput:
    latent_dist: PackedLatents


@dataclass
class DecoderOutput:
    sample: torch.Tensor


class PixelPackCodec(ModelMixin, ConfigMixin):
    r"""Pixels to channels and back, exactly.

    Args:
        spatial_compression_ratio (`int`): `s`, the side of the pixel patch one latent pixel holds.
        temporal_compression_ratio (`int`): `t`, the frames one latent frame holds (after the first).
        scaling_factor (`float`): latents are multiplied by it after encoding (by the pipeline), so that they have
            about unit variance for flow matching; set from data when the model is made.
        shift_factor (`float`): subtracted before scaling; set from data with the scale.
        projection_dim (`int`, *optional*): keep this many principal components of the packed patches (set by
            `fit_projection`); None keeps every value (exact).
        whitening (`float`): each principal component is divided by its standard deviation to this power (fitted
            with the projection). At 0 the latents keep the pixels' spectrum: on the procedural world the first
            component (a patch's brightness) varies about 80 times as much as the last one kept, so flow matching
            settles colours at high noise and the finer components, which draw shapes, only in the last steps. At 1
            every component has unit variance.
    """

    # Nothing to tile: the codec is a reshape. The pipeline toggles this flag around large clips.
    use_tiling = False

    @register_to_config
    def __init__(
        self,
        *,
        spatial_compression_ratio: int = 8,
        temporal_compression_ratio: int = 4,
        scaling_factor: float = 1.0,
        shift_factor: float = 0.0,
        projection_dim: int | None = None,
        whitening: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (("spatial", spatial_compression_ratio), ("temporal", temporal_compression_ratio)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}_compression_ratio={value!r} must be a positive integer")
        if not scaling_factor > 0:
            raise ValueError(f"scaling_factor={scaling_factor!r} must be positive")
        # ModelMixin reports the dtype and device of its first parameter or buffer, and saving needs a tensor to
        # write: one scalar serves both.
        self.register_buffer("dtype_anchor", torch.zeros(()))
        if projection_dim is not None:
            packed = 3 * temporal_compression_ratio * spatial_compression_ratio**2
            if not isinstance(projection_dim, int) or not 0 < projection_dim <= packed:
                raise ValueError(f"projection_dim={projection_dim!r} must be between 1 and {packed}")
            self.register_buffer("basis", torch.zeros(projection_dim, packed))  # C, P: orthonormal rows
            self.register_buffer("center", torch.zeros(packed))  # P
            if not 0.0 <= whitening <= 1.0:
                raise ValueError(f"whitening={whitening!r} must be between 0 and 1")
            if whitening:
                self.register_buffer("component_scale", torch.ones(projection_dim))  # C
        elif whitening:
            raise ValueError(f"whitening={whitening!r} needs a projection (projection_dim)")

    @property
    def packed_channels(self) -> int:
        s, t = self.config.spatial_compression_ratio, self.config.temporal_compression_ratio
        return 3 * t * s * s

    @property
    def latent_channels(self) -> int:
        return self.config.projection_dim or self.packed_channels

    @torch.no_grad()
    def fit_projection(self, videos: torch.Tensor, max_patches: int = 200_000) -> float:
        """Set the projection to the top principal components of `videos`' packed patches ([N, 3, F, H, W] in
        [-1, 1]); returns the share of their variance kept."""
        if self.config.projection_dim is None:
            raise ValueError("this codec has no projection (projection_dim=None)")
        packed = self._pack(videos.float())  # N, P, F', H', W'
        patches = packed.permute(0, 2, 3, 4, 1).reshape(-1, packed.shape[1]).double()  # N*F'*H'*W', P
        if len(patches) > max_patches:
            patches = patches[torch.randperm(len(patches), generator=torch.Generator().manual_seed(0))[:max_patches]]
        center = patches.mean(dim=0)
        _, singular, vt = torch.linalg.svd(patches - center, full_matrices=False)
        dim = self.config.projection_dim
        self.basis.copy_(vt[:dim].float())
        self.center.copy_(center.float())
        if self.config.whitening:
            component_std = singular[:dim] / (len(patches) - 1) ** 0.5
            self.component_scale.copy_((component_std**self.config.whitening).float())
        return float((singular[:dim] ** 2).sum() / (singular**2).sum())

    def enable_tiling(self, *args: object, **kwargs: object) -> None:
        """Accepted for the autoencoder interface; a reshape needs no tiles."""

    def disable_tiling(self) -> None:
        """Accepted for the autoencoder interface."""

    def _check(self, shape: torch.Size, what: str) -> None:
        s, t = self.config.spatial_compression_ratio, self.config.temporal_compression_ratio
        if len(shape) != 5:
            raise ValueError(f"{what} must be [B, C, F, H, W], got shape {tuple(shape)}")
        if what == "video" and (shape[1] != 3 or (shape[2] - 1) % t or shape[3] % s or shape[4] % s):
            raise ValueError(f"video [B, 3, k*{t}+1, H, W] with H, W multiples of {s} expected, got {tuple(shape)}")
        if what == "latents" and shape[1] != self.latent_channels:
            raise ValueError(f"latents need {self.latent_channels} channels, got shape {tuple(shape)}")

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> EncoderOutput | tuple[PackedLatents]:
        """Video `[B, 3, F, H, W]` (values in [-1, 1]) to latents `[B, C, 1 + (F-1)/t, H/s, W/s]`, C being
        `3*t*s*s` or `projection_dim`."""
        latents = self._pack(x)
        if self.config.projection_dim is not None:
            latents = torch.einsum("bpfhw,cp->bcfhw", latents - self.center[:, None, None, None], self.basis)
            if self.config.whitening:
                latents = latents / self.component_scale[:, None, None, None]
        latents = latents - self.config.shift_factor
        return EncoderOutput(PackedLatents(latents)) if return_dict else (PackedLatents(latents),)

    def _pack(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x.shape, "video")
        s, t = self.config.spatial_compression_ratio, self.config.temporal_compression_ratio
        # The first frame fills its latent frame alone, as in causal video VAEs.
        x = torch.cat([x[:, :, :1].expand(-1, -1, t, -1, -1), x[:, :, 1:]], dim=2)
        b, c, f, h, w = x.shape
        x = x.reshape(b, c, f // t, t, h // s, s, w // s, s)  # B, C, F', t, H', s, W', s
        x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)  # B, C, t, s, s, F', H', W'
        return x.reshape(b, c * t * s * s, f // t, h // s, w // s)

    def decode(self, z: torch.Tensor, return_dict: bool = True) -> DecoderOutput | tuple[torch.Tensor]:
        """Latents back to video `[B, 3, 1 + t*(F'-1), H'*s, W'*s]`; the first latent frame's copies are averaged."""
        self._check(z.shape, "latents")
        s, t = self.config.spatial_compression_ratio, self.config.temporal_compression_ratio
        z = z + self.config.shift_factor
        if self.config.projection_dim is not None:
            if self.config.whitening:
                z = z * self.component_scale[:, None, None, None]
            z = torch.einsum("bcfhw,cp->bpfhw", z, self.basis) + self.center[:, None, None, None]
        b, _, f, h, w = z.shape
        x = z.reshape(b, 3, t, s, s, f, h, w)  # B, C, t, s, s, F', H', W'
        x = x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, 3, f * t, h * s, w * s)  # B, C, F'*t, H, W
        video = torch.cat([x[:, :, :t].mean(dim=2, keepdim=True), x[:, :, t:]], dim=2)
        return DecoderOutput(video) if return_dict else (video,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x).latent_dist.mode()).sample
