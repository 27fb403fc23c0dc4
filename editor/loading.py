"""Load an edit pipeline by name: a preset (`icve`), or a local pipeline directory written by `save_pretrained`.

Loading also sets precision, quantization and the memory plan, and prints the memory estimate before any weight is
read. Hub ids are used only where the Hugging Face Hub is reachable; otherwise the error lists the files to fetch
and where to put them.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler

from .convert import config_from_original, load_transformer
from .memory import PLANS, GiB, MemoryChoice, apply_memory_plan, available_memory, choose_plan, estimate_memory
from .pipeline import BATCHED_GUIDANCE_MAX_CELLS, VideoEditPipeline
from .presets import DEFAULT_MODEL, PRESETS, ModelPreset
from .quantization import TEXT_MODEL_BLOCK_PREFIXES, TRANSFORMER_BLOCK_PREFIXES, Quantization, quantize_linear_layers
from .text_encoders import LlamaClipTextEncoder
from .transformer import ICVETransformer3DModel

logger = logging.getLogger(__name__)

PRECISIONS = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def precision_name(dtype: torch.dtype) -> str:
    """`dtype` as `PRECISIONS` names it; another dtype (a quantized model's storage) by torch's name."""
    return next((name for name, known in PRECISIONS.items() if known == dtype), str(dtype).removeprefix("torch."))


# On a CPU bf16 must beat fp32 by this much to be the default: a close call goes to the exact format.
BF16_MIN_SPEEDUP = 1.15


def native_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bf16 in hardware: CUDA, or a CPU with AVX512-BF16 or AMX.

    Elsewhere bf16 is emulated and slower than fp32.
    """
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, so absent ones count as no
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


@functools.cache
def cpu_bf16_speedup(tokens: int = 768, width: int = 256, repeats: int = 8) -> float:
    """fp32 time over bf16 time of a transformer MLP (layer norm, linear, GELU, linear) on this CPU, best of
    `repeats` each, the two taking turns; measured once per process, in about a fifth of a second.

    The CPU's flags do not settle it: of two 2-core CPUs both reporting AVX512-BF16, one edited the demo model 1.4x
    faster in bf16 and the other 0.75x as fast (`benchmarks/demo_edit_speed.py`), its bf16 matmuls slower than fp32.
    """
    generator = torch.Generator().manual_seed(0)
    weights = [torch.randn(4 * width, width, generator=generator), torch.randn(width, 4 * width, generator=generator)]
    x = torch.randn(tokens, width, generator=generator)
    cases = {dtype: (x.to(dtype), [w.to(dtype) for w in weights]) for dtype in (torch.float32, torch.bfloat16)}

    def mlp(dtype: torch.dtype) -> float:
        h, (up, down) = cases[dtype]
        f = torch.nn.functional
        begin = time.perf_counter()
        f.linear(f.gelu(f.linear(f.layer_norm(h, (width,)), up), approximate="tanh"), down)
        return time.perf_counter() - begin

    best = dict.fromkeys(cases, float("inf"))
    with torch.no_grad():
        for index in range(repeats + 1):
            for dtype in cases:
                seconds = mlp(dtype)
                if index:  # the first call of each warms its kernels up
                    best[dtype] = min(best[dtype], seconds)
    speedup = best[torch.float32] / best[torch.bfloat16]
    logger.info("bf16 runs %.2fx as fast as fp32 on this CPU", speedup)
    return speedup


def prefers_bf16(device: torch.device) -> bool:
    """Whether bf16 is the faster default on `device`: CUDA, or a CPU with bf16 in hardware where it measures at
    least `BF16_MIN_SPEEDUP` times as fast as fp32 (`cpu_bf16_speedup`)."""
    return native_bf16(device) and (device.type == "cuda" or cpu_bf16_speedup() >= BF16_MIN_SPEEDUP)


# What a HunyuanVideo base folder must hold (diffusers layout), and an ICVE transformer folder (original layout).
BASE_FILES = (
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/config.json",
    "text_encoder/*.safetensors",
    "tokenizer/*",
    "text_encoder_2/config.json",
    "text_encoder_2/*.safetensors",
    "tokenizer_2/*",
)
TRANSFORMER_FILES = ("config.json", "*.safetensors")


class ModelFilesMissing(FileNotFoundError):
    """A model's files are neither on disk nor reachable; the message lists them."""


@dataclass(frozen=True)
class LoadOptions:
    """How to load: precision, quantization, memory plan, and the clip size the memory estimate is made for."""

    device: str | None = None
    precision: str | None = None  # bf16 where it is the faster (`prefers_bf16`), fp32 elsewhere
    quantization: Quantization = field(default_factory=Quantization)
    memory_plan: str = "auto"
    max_memory_gib: float | None = None
    frames: int | None = None  # the preset's defaults when None
    height: int | None = None
    width: int | None = None

    def __post_init__(self) -> None:
        if self.memory_plan not in PLANS:
            raise ValueError(f"memory plan {self.memory_plan!r} is not one of {PLANS}")
        if self.max_memory_gib is not None and not self.max_memory_gib > 0:
            raise ValueError(f"max_memory_gib={self.max_memory_gib!r} must be positive")

    def torch_device(self) -> torch.device:
        return torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def resolved_precision(self) -> str:
        precision = self.precision or ("bf16" if prefers_bf16(self.torch_device()) else "fp32")
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {sorted(PRECISIONS)}")
        return precision

    def dtype(self) -> torch.dtype:
        return PRECISIONS[self.resolved_precision()]


def _missing(folder: Path, patterns: tuple[str, ...]) -> list[str]:
    return [pattern for pattern in patterns if not any(folder.glob(pattern))]


def resolve_model_folder(reference: str | Path, patterns: tuple[str, ...], what: str, flag: str) -> Path:
    """A local folder holding `patterns`: `reference` itself if it is a folder, else a hub download of it."""
    path = Path(reference).expanduser()
    if path.exists():
        missing = _missing(path, patterns)
        if missing:
            raise ModelFilesMissing(f"{what} folder {path} lacks {missing}")
        return path
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(str(reference), allow_patterns=list(patterns)))
    except Exception as error:  # offline, unknown repo, no permission: all mean "not available here"
        raise ModelFilesMissing(
            f"{what} {reference!r} is not a local folder and the Hugging Face Hub could not provide it "
            f"({type(error).__name__}). Download these files of {reference} into one folder and pass it with "
            f"{flag}: {list(patterns)}"
        ) from error
    missing = _missing(folder, patterns)
    if missing:
        raise ModelFilesMissing(f"{what} {reference} on the hub lacks {missing}")
    return folder


def _transformer_config(folder: Path) -> dict:
    config = json.loads((folder / "config.json").read_text())
    return config if "_class_name" in config else config_from_original(config)


def _meta_parameters(build) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build().parameters())


def _bytes_per_parameter(dtype: torch.dtype, quantization: Quantization) -> float:
    # int8 keeps a scale per output row; nf4 packs two weights a byte plus a scale per 64 (and its own scales).
    return {"none": torch.finfo(dtype).bits / 8, "int8": 1.03, "nf4": 0.53}[quantization.method]


def estimate_for_preset(
    preset: ModelPreset, base: Path, transformer: Path, options: LoadOptions
) -> tuple[MemoryChoice | None, str]:
    """The memory estimate (read from configs only, on the meta device) and the plan it leads to."""
    from transformers import AutoConfig, AutoModel

    dtype = options.dtype()
    bytes_per = torch.finfo(dtype).bits / 8
    config = _transformer_config(transformer)
    init = {k: v for k, v in config.items() if not k.startswith("_")}
    parameters = _meta_parameters(lambda: ICVETransformer3DModel.from_config(init))
    llama, clip = (
        _meta_parameters(lambda sub=sub: AutoModel.from_config(AutoConfig.from_pretrained(base / sub)))
        for sub in ("text_encoder", "text_encoder_2")
    )
    vae_parameters = _meta_parameters(
        lambda: AutoencoderKLHunyuanVideo.from_config(AutoencoderKLHunyuanVideo.load_config(base / "vae"))
    )
    frames = options.frames or preset.defaults.num_frames
    height = options.height or preset.defaults.height
    width = options.width or preset.defaults.width
    patch = init.get("patch_size", 2)
    latent_cells = ((frames - 1) // 4 + 1) * (height // 8) * (width // 8)
    latent_tokens = latent_cells // (patch * patch)
    batched = preset.defaults.guidance_scale > 1 and latent_cells <= BATCHED_GUIDANCE_MAX_CELLS
    estimate = estimate_memory(
        transformer_parameters=parameters,
        transformer_hidden=init["num_attention_heads"] * init["attention_head_dim"],
        transformer_bytes_per_parameter=_bytes_per_parameter(dtype, options.quantization),
        # The Llama is quantized like the transformer; CLIP is small and stays as it is.
        text_encoder_bytes=int(llama * _bytes_per_parameter(dtype, options.quantization) + clip * bytes_per),
        vae_bytes=int(vae_parameters * bytes_per),
        latent_tokens=latent_tokens,
        text_tokens=256,
        frames=frames,
        height=height,
        width=width,
        activation_bytes=int(bytes_per),
        batch=2 if batched else 1,
    )
    summary = f"{frames} frames at {width}x{height}: {estimate.describe()}"
    if options.memory_plan != "auto":
        return None, summary
    device = options.torch_device()
    if device.type != "cuda" and options.max_memory_gib is None:
        return None, summary  # nothing to fit on a CPU without a cap: everything stays where it is
    available = available_memory(device, options.max_memory_gib)
    choice = choose_plan(estimate, available)
    plan = f"plan {choice.plan}, VAE tiling {'on' if choice.vae_tiling else 'off'}"
    return choice, f"{summary}; {available / GiB:.1f} GiB available -> {plan}"


REPO_ROOT = Path(__file__).resolve().parents[1]


def bundled_folder(preset: ModelPreset) -> Path:
    """The pipeline folder of a bundled preset, or an error saying how to make it."""
    folder = REPO_ROOT / preset.bundled
    if not (folder / "model_index.json").is_file():
        raise ModelFilesMissing(
            f"the {preset.name} model is not in {folder}; train and ship it with `python -m training.recipes.demo`"
        )
    return folder


def load_pipeline(
    model: str | Path = DEFAULT_MODEL,
    *,
    base: str | Path | None = None,
    transformer: str | Path | None = None,
    options: LoadOptions | None = None,
) -> VideoEditPipeline:
    """Load `model`: a preset name ("demo", "icve") or a pipeline directory written by `save_pretrained`.

    For a preset, `base` and `transformer` override where its parts come from (hub ids or local folders).
    """
    options = options or LoadOptions()
    device, dtype = options.torch_device(), options.dtype()
    options.quantization.resolve(device)  # fail before loading anything if the combination cannot run here

    if str(model) in PRESETS and PRESETS[str(model)].bundled:
        pipe = VideoEditPipeline.from_pretrained(bundled_folder(PRESETS[str(model)]), dtype=dtype)
        choice = None
    elif str(model) in PRESETS:
        preset = PRESETS[str(model)]
        base_dir = resolve_model_folder(base or preset.base, BASE_FILES, "HunyuanVideo base", "--base")
        transformer_dir = resolve_model_folder(
            transformer or preset.transformer, TRANSFORMER_FILES, "ICVE transformer", "--transformer"
        )
        choice, summary = estimate_for_preset(preset, base_dir, transformer_dir, options)
        logger.info("memory %s", summary)
        pipe = VideoEditPipeline(
            transformer=load_transformer(transformer_dir, torch_dtype=dtype),
            vae=AutoencoderKLHunyuanVideo.from_pretrained(base_dir / "vae", dtype=dtype),
            scheduler=FlowMatchEulerDiscreteScheduler(shift=preset.flow_shift),
            text_encoder=LlamaClipTextEncoder.from_pretrained(base_dir, dtype=dtype),
            defaults=preset.defaults.to_dict(),
        )
    else:
        folder = Path(model).expanduser()
        if not (folder / "model_index.json").is_file():
            known = ", ".join(sorted(PRESETS))
            raise ModelFilesMissing(f"model {str(model)!r} is neither a preset ({known}) nor a pipeline folder")
        pipe = VideoEditPipeline.from_pretrained(folder, dtype=dtype)
        choice = None

    quantize(pipe, options.quantization, device)
    plan = choice.plan if choice else ("none" if options.memory_plan == "auto" else options.memory_plan)
    apply_memory_plan(pipe, plan, device)
    if choice and choice.vae_tiling and hasattr(pipe.vae, "enable_tiling"):
        pipe.vae.enable_tiling()
    return pipe


def quantize(pipe: VideoEditPipeline, quantization: Quantization, device: torch.device) -> None:
    """Quantize the large parts by rule: the transformer's blocks and a Llama text encoder's layers."""
    if quantization.method == "none":
        return
    quantize_linear_layers(pipe.transformer, quantization, device, TRANSFORMER_BLOCK_PREFIXES)
    text_model = getattr(pipe.text_encoder, "text_model", None)
    if text_model is not None and text_model.config.model_type == "llama":
        quantize_linear_layers(text_model, quantization, device, TEXT_MODEL_BLOCK_PREFIXES)
