"""`VideoEditPipeline`: a source video and an instruction in, the edited video out.

Sampling is flow matching with Euler steps from noise to the target, the clean source riding along in the same
token sequence at every step (see `transformer.py`). Classifier-free guidance is real: the unconditional branch
keeps the source video and swaps the instruction for the negative prompt, so guidance pushes towards the edit and
not away from the source.

With a mask the edit is local: at every step the latents outside the mask are replaced by the source latents noised
to the current noise level, and the decoded frames are composited over the source pixels with the feathered mask, so
the video outside the mask is the source, pixel for pixel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.schedulers import FlowMatchEulerDiscreteScheduler
from diffusers.utils import BaseOutput

# Saved pipelines name their components' modules; diffusers only loads from modules already imported.
from . import pixel_codec, text_encoders  # noqa: F401
from .masks import PROPAGATIONS, composite, latent_mask, prepare_mask
from .presets import ICVE, EditDefaults
from .text_encoders import PromptEmbeds
from .transformer import ICVETransformer3DModel
from .video import conform_clip, fit_size, frame_count_for, read_video

logger = logging.getLogger(__name__)

# Above this many source pixels (frames x height x width) the VAE encodes and decodes in tiles to bound memory.
VAE_TILING_PIXELS = 61 * 480 * 768 // 2
# Guidance batches its two branches up to this many latent cells per clip (F' x H' x W'; 192 for the demo model's
# 9 x 64 x 64 clips): there one forward of twice the batch shares the per-call overhead of two (on 2 CPU cores the
# demo model edits 1.16x faster in bf16, and as fast in fp32: benchmarks/demo_edit_speed.py). Above it one branch
# keeps the device busy, and batching would only double the activations.
BATCHED_GUIDANCE_MAX_CELLS = 16384


@dataclass
class EditProgress:
    """Where an edit is: `stage` is "encode", "denoise" or "decode"; `step` of `total` within it."""

    stage: str
    step: int
    total: int


@dataclass
class VideoEditPipelineOutput(BaseOutput):
    """The edited videos and the clip they were made from.

    Args:
        frames: `[B, F, H, W, 3]` uint8 (output_type "np"), or `[B, C, F, H, W]` latents (output_type "latent").
        source_frames: the source as the model saw it, `[F, H, W, 3]` uint8 (resampled, resized, cropped).
        fps: the frame rate of both.
        source_start: where in the source file (seconds) the clip begins, for trimming its audio to match.
        mask: with a mask, the feathered mask `[F, H, W]` float32 in [0, 1] the frames were composited with.
    """

    frames: np.ndarray | torch.Tensor
    source_frames: np.ndarray
    fps: float
    source_start: float
    mask: np.ndarray | None = None


class VideoEditPipeline(DiffusionPipeline):
    r"""Instruction-based video editing with an in-context video transformer (ICVE).

    Args:
        transformer ([`ICVETransformer3DModel`]): the in-context transformer.
        vae: a video autoencoder with `encode(x).latent_dist`, `decode(z).sample`, and `scaling_factor`,
            `spatial_compression_ratio`, `temporal_compression_ratio` in its config (e.g.
            [`AutoencoderKLHunyuanVideo`]).
        scheduler ([`FlowMatchEulerDiscreteScheduler`]): its `shift` is the model's flow shift.
        text_encoder: a text-encoding component from `editor.text_encoders` (`text_encoder(prompts) -> PromptEmbeds`).
        defaults (`dict`, *optional*): the model's [`EditDefaults`]; ICVE's when not given.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _callback_tensor_inputs = ("latents",)
    memory_plan = "none"  # where the parts live while editing; `editor.memory.apply_memory_plan` records its choice

    def __init__(
        self,
        transformer: ICVETransformer3DModel,
        vae,
        scheduler: FlowMatchEulerDiscreteScheduler,
        text_encoder,
        defaults: dict | None = None,
    ) -> None:
        super().__init__()
        self.register_modules(transformer=transformer, vae=vae, scheduler=scheduler, text_encoder=text_encoder)
        self.defaults = EditDefaults.from_dict(defaults) if defaults else ICVE.defaults
        self.register_to_config(defaults=self.defaults.to_dict())

    # Geometry -----------------------------------------------------------------------------------------------------

    @property
    def spatial_multiple(self) -> int:
        """Pixel sizes must be multiples of this: the VAE's downsampling times the transformer's patch."""
        return self.vae.config.spatial_compression_ratio * self.transformer.config.patch_size

    @property
    def temporal_multiple(self) -> int:
        """Frame counts must be `k * temporal_multiple + 1` (the VAE keeps the first frame on its own)."""
        return self.vae.config.temporal_compression_ratio * self.transformer.config.patch_size_t

    # Inputs -------------------------------------------------------------------------------------------------------

    def check_inputs(
        self,
        video,
        prompt: str | list[str],
        negative_prompt: str | None,
        height: int | None,
        width: int | None,
        num_frames: int | None,
        num_inference_steps: int,
        guidance_scale: float,
        embedded_guidance_scale: float,
        fps: float,
        resize_mode: str,
        output_type: str,
        mask=None,
        mask_frame: int = 0,
        mask_propagation: str = "static",
        mask_feather: float = 0.0,
    ) -> None:
        if isinstance(video, str | Path):
            if not Path(video).is_file():
                raise ValueError(f"video={str(video)!r} is not a file")
        elif isinstance(video, np.ndarray):
            if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
                raise ValueError(
                    f"video array must be uint8 [F, H, W, 3], got {video.dtype} with shape {tuple(video.shape)}"
                )
        elif isinstance(video, torch.Tensor):
            if video.ndim != 4 or video.shape[1] != 3 or not video.is_floating_point():
                raise ValueError(f"video tensor must be float [F, 3, H, W] in [0, 1], got shape {tuple(video.shape)}")
        else:
            raise ValueError(
                f"video must be a path, a uint8 [F, H, W, 3] array or a [F, 3, H, W] tensor, got {type(video)}"
            )
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"prompt must be a non-empty string or list of strings, got {prompt!r}")
        if any(not p.strip() for p in prompts):
            raise ValueError(f"prompt={prompt!r} is empty: say what to change")
        if negative_prompt is not None and not isinstance(negative_prompt, str):
            raise ValueError(f"negative_prompt must be a string, got {negative_prompt!r}")
        m = self.spatial_multiple
        for name, value in (("height", height), ("width", width)):
            if value is not None and (not isinstance(value, int) or value < m or value % m):
                raise ValueError(f"{name}={value!r} must be a positive multiple of {m}")
        if num_frames is not None and (
            not isinstance(num_frames, int) or num_frames < 1 or (num_frames - 1) % self.temporal_multiple
        ):
            raise ValueError(f"num_frames={num_frames!r} must be k * {self.temporal_multiple} + 1 (e.g. 9, 13, 61)")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps={num_inference_steps!r} must be a positive integer")
        if not guidance_scale >= 1.0:
            raise ValueError(f"guidance_scale={guidance_scale!r} must be >= 1 (1 disables classifier-free guidance)")
        if not embedded_guidance_scale > 0:
            raise ValueError(f"embedded_guidance_scale={embedded_guidance_scale!r} must be positive")
        if not fps > 0:
            raise ValueError(f"fps={fps!r} must be positive")
        if resize_mode not in ("crop", "pad"):
            raise ValueError(f"resize_mode={resize_mode!r} must be 'crop' or 'pad'")
        if output_type not in ("np", "latent"):
            raise ValueError(f"output_type={output_type!r} must be 'np' or 'latent'")
        if mask is not None and not isinstance(mask, str | Path | np.ndarray | torch.Tensor):
            raise ValueError(f"mask must be a path, an array or a tensor, got {type(mask)}")
        if isinstance(mask_frame, bool) or not isinstance(mask_frame, int) or mask_frame < 0:
            raise ValueError(f"mask_frame={mask_frame!r} must be a frame index >= 0")
        if mask_propagation not in PROPAGATIONS:
            raise ValueError(f"mask_propagation={mask_propagation!r} must be one of {PROPAGATIONS}")
        if not mask_feather >= 0:
            raise ValueError(f"mask_feather={mask_feather!r} must be >= 0 pixels")

    def load_source(
        self,
        video,
        *,
        height: int | None,
        width: int | None,
        num_frames: int | None,
        fps: float,
        start: float,
        end: float | None,
        resize_mode: str,
    ) -> tuple[np.ndarray, float]:
        """The source as the model will see it: `[F, H, W, 3]` uint8, and where it starts in the file (seconds).

        Without an explicit size the source keeps its aspect ratio at about the model's default area; without an
        explicit frame count it uses as many frames as it has, up to the model's default.
        """
        max_frames = num_frames or self.defaults.num_frames
        if isinstance(video, str | Path):
            clip = read_video(video, fps=fps, start=start, end=end, max_frames=max_frames)
            frames, start = clip.frames, clip.start
        elif isinstance(video, torch.Tensor):
            frames = (video.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        else:
            frames = video
        available = frame_count_for(len(frames), self.temporal_multiple)
        if num_frames is not None and len(frames) < num_frames:
            raise ValueError(f"num_frames={num_frames} but the source has only {len(frames)} frames at {fps:g} fps")
        count = num_frames or min(available, frame_count_for(self.defaults.num_frames, self.temporal_multiple))
        if height is None or width is None:
            area = self.defaults.height * self.defaults.width
            fit_h, fit_w = fit_size(frames.shape[1], frames.shape[2], target_area=area, multiple=self.spatial_multiple)
            height, width = height or fit_h, width or fit_w
        return conform_clip(frames, num_frames=count, height=height, width=width, resize_mode=resize_mode), start

    def prepare_mask(
        self,
        mask: str | Path | np.ndarray | torch.Tensor,
        source_frames: np.ndarray,
        *,
        mask_frame: int = 0,
        mask_propagation: str = "static",
        mask_feather: float = 0.0,
        resize_mode: str = "crop",
        fps: float | None = None,
        start: float = 0.0,
        end: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The mask over the clip as the model sees it: `(binary, feathered)`, both `[F, H, W]` (see `masks`)."""
        if isinstance(mask, torch.Tensor):
            mask = mask.detach().cpu().numpy()
        return prepare_mask(
            mask, source_frames, frame=mask_frame, propagation=mask_propagation, feather=mask_feather,
            resize_mode=resize_mode, fps=fps, start=start, end=end,
        )  # fmt: skip

    # Stages -------------------------------------------------------------------------------------------------------

    def encode_prompt(self, prompts: list[str], device: torch.device, dtype: torch.dtype) -> PromptEmbeds:
        return self.text_encoder(prompts, device=device).to(device=device, dtype=dtype)

    @contextmanager
    def _vae_tiling(self, frames: np.ndarray, vae_tiling: bool | None) -> Iterator[None]:
        """Tile the VAE for this call when asked, or when the clip is large; the VAE's own setting is restored."""
        if not hasattr(self.vae, "use_tiling"):
            yield
            return
        before = self.vae.use_tiling
        large = frames.shape[0] * frames.shape[1] * frames.shape[2] > VAE_TILING_PIXELS
        self.vae.use_tiling = (before or large) if vae_tiling is None else vae_tiling
        try:
            yield
        finally:
            self.vae.use_tiling = before

    @torch.no_grad()
    def encode_video(self, frames: np.ndarray, device: torch.device) -> torch.Tensor:
        """uint8 `[F, H, W, 3]` to scaled latents `[1, C, F', H', W']` (the posterior's mode, never a sample)."""
        pixels = torch.from_numpy(frames).to(device=device, dtype=self.vae.dtype)
        pixels = pixels.permute(3, 0, 1, 2).unsqueeze(0) / 127.5 - 1.0  # 1, 3, F, H, W in [-1, 1]
        latents = self.vae.encode(pixels).latent_dist.mode()
        return latents.float() * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """Scaled latents `[B, C, F', H', W']` to uint8 frames `[B, F, H, W, 3]`."""
        pixels = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        pixels = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # B, 3, F, H, W
        return pixels.permute(0, 2, 3, 4, 1).cpu().numpy()  # B, F, H, W, 3

    def prepare_timesteps(self, num_inference_steps: int, device: torch.device) -> torch.Tensor:
        # Uniform sigmas from 1 (noise) to 0; the scheduler applies the model's shift to them.
        sigmas = np.linspace(1.0, 0.0, num_inference_steps + 1)[:-1]
        self.scheduler.set_timesteps(sigmas=sigmas, device=device)
        return self.scheduler.timesteps

    # Call ---------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        video: str | Path | np.ndarray | torch.Tensor,
        prompt: str | list[str],
        negative_prompt: str | None = None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        fps: float | None = None,
        start: float = 0.0,
        end: float | None = None,
        resize_mode: str = "crop",
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        embedded_guidance_scale: float | None = None,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        vae_tiling: bool | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        progress_callback: Callable[[EditProgress], None] | None = None,
        callback_on_step_end: Callable | None = None,
        mask: str | Path | np.ndarray | torch.Tensor | None = None,
        mask_frame: int = 0,
        mask_propagation: str = "static",
        mask_feather: float = 0.0,
        batch_guidance: bool | None = None,
    ) -> VideoEditPipelineOutput | tuple:
        r"""Edit `video` as `prompt` says.

        Args:
            video: a file path, uint8 frames `[F, H, W, 3]`, or a float tensor `[F, 3, H, W]` in [0, 1].
            prompt: the instruction, e.g. "replace the dog with a cat" (a list edits the video once per prompt).
            negative_prompt: the unconditional branch's text; the model's default (usually empty) when `None`.
            height, width: output size, multiples of `spatial_multiple`; by default the source's aspect at the
                model's area.
            num_frames: `k * temporal_multiple + 1`; by default as many as the source has, up to the model's.
            fps: the frame rate the source is resampled to; the model's by default.
            start, end: trim a file source, in seconds.
            resize_mode: "crop" (cover, centre-crop) or "pad" (fit, black borders).
            num_inference_steps, guidance_scale, embedded_guidance_scale: sampling; the model's defaults if `None`.
            generator: seeds the initial noise (same seed, same output).
            latents: initial noise `[B, C, F', H', W']` instead of sampling it.
            vae_tiling: force VAE tiling on or off; `None` tiles large clips.
            output_type: "np" for uint8 frames, "latent" for the denoised latents.
            progress_callback: called with an [`EditProgress`] at every stage and step; raising from it cancels.
            callback_on_step_end: diffusers' step-end callback `(pipe, i, t, {"latents": ...}) -> dict`; returned
                latents replace the current ones.
            mask: where the edit may change the video (True or white): an image or video file, a still `[H, W]`
                mask or per-frame `[F, H, W]` masks, of any size (resized like the video). Outside it the source is
                kept exactly. `None` edits the whole frame.
            mask_frame: the frame (of the clip the model sees) a still mask was drawn on.
            mask_propagation: "static" keeps a still mask in place; "track" moves it with the content (optical flow).
            mask_feather: width in pixels of the soft edge inside the mask.
            batch_guidance: run guidance's two branches as one forward of twice the batch (one call's overhead
                instead of two) or one after the other (half the activation memory). `None` batches them when the
                clip is short (`BATCHED_GUIDANCE_MAX_CELLS`).
        """
        d = self.defaults
        negative_prompt = d.negative_prompt if negative_prompt is None else negative_prompt
        num_inference_steps = d.num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance_scale = d.guidance_scale if guidance_scale is None else guidance_scale
        embedded_guidance_scale = (
            d.embedded_guidance_scale if embedded_guidance_scale is None else embedded_guidance_scale
        )
        fps = d.fps if fps is None else fps
        report = progress_callback or (lambda progress: None)

        # 1. Check inputs
        self.check_inputs(
            video, prompt, negative_prompt, height, width, num_frames, num_inference_steps, guidance_scale,
            embedded_guidance_scale, fps, resize_mode, output_type, mask, mask_frame, mask_propagation, mask_feather,
        )  # fmt: skip
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        device = self._execution_device
        dtype = self.transformer.dtype
        do_cfg = guidance_scale > 1.0

        # 2. Load the source clip at the model's frame rate and size
        source_frames, source_start = self.load_source(
            video, height=height, width=width, num_frames=num_frames, fps=fps, start=start, end=end,
            resize_mode=resize_mode,
        )  # fmt: skip
        batch_size = len(prompts) * num_videos_per_prompt
        feathered = None
        if mask is not None:
            binary, feathered = self.prepare_mask(
                mask, source_frames, mask_frame=mask_frame, mask_propagation=mask_propagation,
                mask_feather=mask_feather, resize_mode=resize_mode, fps=fps, start=start, end=end,
            )  # fmt: skip

        # 3. Encode the instruction (and the negative prompt for the unconditional branch)
        report(EditProgress("encode", 0, 2))
        embeds = self.encode_prompt(prompts, device, dtype).repeat(num_videos_per_prompt)
        negative_embeds = None
        if do_cfg:
            negative_embeds = self.encode_prompt([negative_prompt] * len(prompts), device, dtype)
            negative_embeds = negative_embeds.repeat(num_videos_per_prompt)

        # 4. Encode the source video: clean latents, shared by every sample and both guidance branches
        with self._vae_tiling(source_frames, vae_tiling):
            source_latents = self.encode_video(source_frames, device)  # 1, C, F', H', W'
        source_latents = source_latents.expand(batch_size, -1, -1, -1, -1).to(dtype)  # B, C, F', H', W'
        report(EditProgress("encode", 2, 2))

        # 5. Prepare timesteps and the initial noise of the target
        timesteps = self.prepare_timesteps(num_inference_steps, device)
        if latents is None:
            shape = tuple(source_latents.shape)
            latents = torch.randn(shape, generator=generator, device=generator.device if generator else "cpu")
        elif latents.shape != source_latents.shape:
            raise ValueError(f"latents shape {tuple(latents.shape)} must be {tuple(source_latents.shape)}")
        latents = latents.to(device=device, dtype=torch.float32)
        keep = None
        if feathered is not None:
            # Outside the mask the target follows the source's own noising path, with the noise it started from.
            noise = latents.clone()
            ratios = self.vae.config.spatial_compression_ratio, self.vae.config.temporal_compression_ratio
            edit_cells = torch.from_numpy(latent_mask(binary, *ratios)).to(device)  # F', H', W'
            keep = (1.0 - edit_cells)[None, None]  # 1, 1, F', H', W'
            source_clean = source_latents.float()
        guidance = None
        if self.transformer.config.guidance_embeds:
            guidance = torch.full((batch_size,), embedded_guidance_scale * 1000.0, device=device)

        if batch_guidance is None:
            batch_guidance = source_latents[0].numel() // source_latents.shape[1] <= BATCHED_GUIDANCE_MAX_CELLS
        if do_cfg and batch_guidance:
            both_embeds = embeds.cat(negative_embeds)
            both_sources = torch.cat([source_latents, source_latents])  # 2B, C, F', H', W'
            both_guidance = None if guidance is None else torch.cat([guidance, guidance])

        # 6. Denoise: Euler steps of the predicted velocity, the source in context at every step
        self._num_timesteps = len(timesteps)
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                # Timesteps stay float32: in bf16, values near 1000 would round to multiples of 4.
                timestep = t.expand(batch_size).float()
                if do_cfg and batch_guidance:
                    velocity, velocity_uncond = self._predict(
                        torch.cat([latents, latents]), both_sources, torch.cat([timestep, timestep]), both_embeds,
                        both_guidance,
                    ).chunk(2)  # fmt: skip
                else:
                    velocity = self._predict(latents, source_latents, timestep, embeds, guidance)
                    if do_cfg:
                        velocity_uncond = self._predict(latents, source_latents, timestep, negative_embeds, guidance)
                if do_cfg:
                    velocity = velocity_uncond + guidance_scale * (velocity - velocity_uncond)
                latents = self.scheduler.step(velocity, t, latents, return_dict=False)[0]
                if keep is not None:
                    sigma = self.scheduler.sigmas[i + 1].to(device)
                    source_noised = (1.0 - sigma) * source_clean + sigma * noise
                    latents = keep * source_noised + (1.0 - keep) * latents

                if callback_on_step_end is not None:
                    outputs = callback_on_step_end(self, i, t, {"latents": latents})
                    latents = outputs.pop("latents", latents)
                progress_bar.update()
                report(EditProgress("denoise", i + 1, len(timesteps)))

        # 7. Decode
        if output_type == "latent":
            frames = latents
        else:
            report(EditProgress("decode", 0, 1))
            with self._vae_tiling(source_frames, vae_tiling):
                frames = self.decode_latents(latents)
            if feathered is not None:
                # The VAE does not reproduce its input exactly: the source's own pixels replace it outside the mask.
                frames = composite(source_frames[None], frames, feathered[None])
            report(EditProgress("decode", 1, 1))
        self.maybe_free_model_hooks()

        if not return_dict:
            return (frames,)
        return VideoEditPipelineOutput(
            frames=frames, source_frames=source_frames, fps=fps, source_start=source_start, mask=feathered
        )

    def _predict(
        self,
        latents: torch.Tensor,
        source_latents: torch.Tensor,
        timestep: torch.Tensor,
        embeds: PromptEmbeds,
        guidance: torch.Tensor | None,
    ) -> torch.Tensor:
        return self.transformer(
            hidden_states=latents.to(source_latents.dtype),
            timestep=timestep,
            encoder_hidden_states=embeds.states,
            encoder_attention_mask=embeds.mask,
            pooled_projections=embeds.pooled,
            guidance=guidance,
            source_latents=source_latents,
            return_dict=False,
        )[0].float()
