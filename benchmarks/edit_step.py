"""Cost of one in-context editing step against one plain text-to-video step at the same output size.

An ICVE edit step runs the transformer over [source, target, text] tokens; a text-to-video step over [target, text].
Both predict the same target latents, so the in-context step costs what the doubled video sequence costs: about
twice the linear-layer work and up to four times the attention work. This script measures that, for a few model
sizes (random weights; the cost does not depend on their values) and clip lengths:

* time: `torch.no_grad()` forwards of one `ICVETransformer3DModel` instance, `--warmup` untimed calls and then the
  median wall time of `--repeats` calls per variant, the two variants taking turns. They use the same model and the
  same target, text and timestep inputs, so their ratio is meaningful. On CUDA the device is synchronised around
  each call.
* peak memory: the largest amount of memory the forward allocates beyond what was held before it (weights and
  inputs are excluded, the output is included). On CUDA: `torch.cuda.max_memory_allocated` after
  `torch.cuda.reset_peak_memory_stats`, minus the memory allocated before the call. On CPU: one extra forward under
  `torch.profiler.profile(profile_memory=True)`, whose allocation and free events from PyTorch's CPU allocator are
  summed in time order and the running maximum taken. This counts tensor memory; scratch buffers that math
  libraries (oneDNN, BLAS) allocate on their own are not seen.

Shapes follow HunyuanVideo's VAE: 4x in time (`latent frames = (video frames - 1) / 4 + 1`) and 8x in space, so the
defaults (3, 5 and 9 latent frames at 16x16 latents, patch 2) are 9, 17 and 33 frames of 128x128 video, 64 video
tokens per latent frame. The source clip has as many frames as the target. Every text token is valid by default, so
no attention mask is built; `--text-valid` pads the text to exercise the masked attention path.

Run from the repository root: `python benchmarks/edit_step.py` (see `--help`).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

# The script is run as a file, not as a module of the package: make `import editor` work from a source checkout.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from editor.transformer import ICVETransformer3DModel  # noqa: E402

logger = logging.getLogger("benchmarks.edit_step")

MIB = 1024**2
VAE_TEMPORAL_FACTOR = 4
VAE_SPATIAL_FACTOR = 8


@dataclass(frozen=True)
class ModelSize:
    num_attention_heads: int
    attention_head_dim: int
    num_layers: int
    num_single_layers: int

    @property
    def hidden_size(self) -> int:
        return self.num_attention_heads * self.attention_head_dim


MODEL_SIZES = {
    "tiny": ModelSize(num_attention_heads=2, attention_head_dim=32, num_layers=1, num_single_layers=1),
    "small": ModelSize(num_attention_heads=4, attention_head_dim=64, num_layers=2, num_single_layers=4),
    "medium": ModelSize(num_attention_heads=8, attention_head_dim=64, num_layers=4, num_single_layers=8),
}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Row:
    model: str
    hidden_size: int
    params_m: float
    video_frames: int
    latent_frames: int
    height: int
    width: int
    text_tokens: int
    tokens_plain: int
    tokens_in_context: int
    time_plain_ms: float
    time_in_context_ms: float
    time_ratio: float
    peak_plain_mib: float
    peak_in_context_mib: float
    memory_ratio: float


def rope_axes(head_dim: int) -> tuple[int, int, int]:
    """Split a head dimension over (time, height, width) like HunyuanVideo's (16, 56, 56) of 128; all parts even."""
    time_dim = max(2, head_dim // 8 // 2 * 2)
    space_dim = (head_dim - time_dim) // 2 // 2 * 2
    return time_dim, space_dim, head_dim - time_dim - space_dim


def build_model(
    size: ModelSize, args: argparse.Namespace, device: torch.device, dtype: torch.dtype
) -> ICVETransformer3DModel:
    torch.manual_seed(args.seed)
    model = ICVETransformer3DModel(
        in_channels=args.latent_channels,
        out_channels=args.latent_channels,
        num_attention_heads=size.num_attention_heads,
        attention_head_dim=size.attention_head_dim,
        num_layers=size.num_layers,
        num_single_layers=size.num_single_layers,
        num_refiner_layers=1,
        mlp_ratio=4.0,
        patch_size=args.patch_size,
        patch_size_t=1,
        text_embed_dim=args.text_embed_dim,
        pooled_projection_dim=args.pooled_dim,
        rope_axes_dim=rope_axes(size.attention_head_dim),
        guidance_embeds=True,
    )
    # Built in float32 on the CPU; `to()` only when needed, as diffusers warns on every dtype cast of a model.
    if device.type != "cpu" or dtype != torch.float32:
        model = model.to(device=device, dtype=dtype)
    return model.eval()


def build_inputs(
    args: argparse.Namespace, latent_frames: int, device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(args.seed)
    batch = args.batch_size
    latent_shape = (batch, args.latent_channels, latent_frames, args.latent_size, args.latent_size)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator).to(device=device, dtype=dtype)

    mask = torch.zeros(batch, args.text_tokens, dtype=torch.int64)
    mask[:, : args.text_valid if args.text_valid is not None else args.text_tokens] = 1
    return {
        "hidden_states": randn(*latent_shape),
        "timestep": torch.full((batch,), 500.0, device=device, dtype=dtype),
        "encoder_hidden_states": randn(batch, args.text_tokens, args.text_embed_dim),
        "encoder_attention_mask": mask.to(device),
        "pooled_projections": randn(batch, args.pooled_dim),
        # Guidance-distilled models take the embedded guidance scale already multiplied by 1000.
        "guidance": torch.full((batch,), 6.0 * 1000.0, device=device, dtype=dtype),
        "source_latents": randn(*latent_shape),
    }


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(steps: list[Callable[[], torch.Tensor]], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Median wall time of each step. The steps take turns within every repeat, so that drift in the machine's speed
    (other load, clock changes) falls on all of them alike instead of on whichever was timed last."""
    for _ in range(warmup):
        for step in steps:
            step()
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(repeats):
        for step, step_times in zip(steps, times, strict=True):
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            step_times.append((time.perf_counter() - start) * 1000.0)
    return [statistics.median(step_times) for step_times in times]


def peak_memory_mib(step: Callable[[], torch.Tensor], device: torch.device) -> float:
    if device.type == "cuda":
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / MIB

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    # The raw Kineto events are read because `prof.events()` folds allocations made inside an operator into that
    # operator's totals, losing their order; "[memory]" events carry +bytes for an allocation and -bytes for a free.
    events = [
        event
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU
    ]
    current = peak = 0
    for event in sorted(events, key=lambda event: event.start_ns()):
        current += event.nbytes()
        peak = max(peak, current)
    return peak / MIB


def measure(
    name: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype, latent_frames_list: list[int]
) -> list[Row]:
    size = MODEL_SIZES[name]
    model = build_model(size, args, device, dtype)
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    tokens_per_frame = (args.latent_size // args.patch_size) ** 2
    rows = []
    for latent_frames in latent_frames_list:
        inputs = build_inputs(args, latent_frames, device, dtype)
        plain_inputs = {**inputs, "source_latents": None}

        def plain(plain_inputs: dict = plain_inputs) -> torch.Tensor:
            return model(**plain_inputs, return_dict=False)[0]

        def in_context(inputs: dict = inputs) -> torch.Tensor:
            return model(**inputs, return_dict=False)[0]

        video_frames = (latent_frames - 1) * VAE_TEMPORAL_FACTOR + 1
        logger.info("%s: %d latent frames (%d video frames)", name, latent_frames, video_frames)
        with torch.no_grad():
            time_plain, time_in_context = time_ms([plain, in_context], device, args.warmup, args.repeats)
            peak_plain = peak_memory_mib(plain, device)
            peak_in_context = peak_memory_mib(in_context, device)
        pixels = args.latent_size * VAE_SPATIAL_FACTOR
        rows.append(
            Row(
                model=name,
                hidden_size=size.hidden_size,
                params_m=params_m,
                video_frames=video_frames,
                latent_frames=latent_frames,
                height=pixels,
                width=pixels,
                text_tokens=args.text_tokens,
                tokens_plain=latent_frames * tokens_per_frame,
                tokens_in_context=2 * latent_frames * tokens_per_frame,
                time_plain_ms=time_plain,
                time_in_context_ms=time_in_context,
                time_ratio=time_in_context / time_plain,
                peak_plain_mib=peak_plain,
                peak_in_context_mib=peak_in_context,
                memory_ratio=peak_in_context / peak_plain if peak_plain > 0 else float("nan"),
            )
        )
    return rows


def format_table(rows: list[Row]) -> str:
    header = (
        "model",
        "params (M)",
        "frames video/latent",
        "video tokens plain | ICL",
        "plain (ms)",
        "ICL (ms)",
        "time ratio",
        "plain (MiB)",
        "ICL (MiB)",
        "mem ratio",
    )
    body = [
        (
            f"{row.model} (d={row.hidden_size})",
            f"{row.params_m:.2f}",
            f"{row.video_frames} / {row.latent_frames}",
            f"{row.tokens_plain} | {row.tokens_in_context}",
            f"{row.time_plain_ms:.1f}",
            f"{row.time_in_context_ms:.1f}",
            f"{row.time_ratio:.2f}",
            f"{row.peak_plain_mib:.1f}",
            f"{row.peak_in_context_mib:.1f}",
            f"{row.memory_ratio:.2f}",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    # Names left-aligned, numbers right-aligned so that their digits line up.
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(MODEL_SIZES), default=list(MODEL_SIZES))
    parser.add_argument("--latent-frames", nargs="+", type=int, default=[3, 5, 9], help="latent frames per clip")
    parser.add_argument("--latent-size", type=int, default=16, help="latent height and width (pixels / 8)")
    parser.add_argument("--latent-channels", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=2)
    parser.add_argument("--text-tokens", type=int, default=64, help="text sequence length")
    parser.add_argument("--text-valid", type=int, default=None, help="valid text tokens, the rest padding (all)")
    parser.add_argument("--text-embed-dim", type=int, default=256)
    parser.add_argument("--pooled-dim", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per variant; the median is reported")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per variant before timing")
    parser.add_argument("--device", default=None, help="cuda if available, else cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch (its default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if args.latent_size % args.patch_size:
        parser.error(f"--latent-size {args.latent_size} is not divisible by --patch-size {args.patch_size}")
    if args.text_valid is not None and not 1 <= args.text_valid <= args.text_tokens:
        parser.error("--text-valid must be between 1 and --text-tokens")
    if args.repeats < 1 or args.warmup < 0 or min(args.latent_frames) < 1:
        parser.error("--repeats and --latent-frames must be positive, --warmup not negative")
    return args


def main(argv: list[str] | None = None) -> list[Row]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # Peak memory is only measured for these two; another backend would get CPU allocator numbers that mean nothing.
    if device.type not in ("cpu", "cuda"):
        raise SystemExit(f"--device {args.device}: only cpu and cuda are supported")
    dtype = DTYPES[args.dtype] if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = [row for name in args.sizes for row in measure(name, args, device, dtype, args.latent_frames)]

    if device.type == "cuda":
        where, memory = torch.cuda.get_device_name(device), "torch.cuda.max_memory_allocated above the pre-call level"
    else:
        where = f"CPU, {torch.get_num_threads()} threads"
        memory = "sum of torch.profiler CPU allocator events in time order (tensor memory only)"
    print(f"One denoising step, plain text-to-video vs in-context (ICL) edit, on {where}, {dtype}.")
    print(
        f"Batch {args.batch_size}, {args.text_tokens} text tokens in both variants, "
        f"median of {args.repeats} after {args.warmup} warm-up call(s), torch.no_grad."
    )
    print(f"Peak memory: extra memory allocated during the forward; {memory}.")
    pixels = args.latent_size * VAE_SPATIAL_FACTOR
    print(
        f"Video {pixels}x{pixels} ({args.latent_size}x{args.latent_size} latents, patch {args.patch_size}); "
        "ratios are in-context / plain.\n"
    )
    print(format_table(rows))

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"device": where, "dtype": str(dtype), "memory_method": memory, "repeats": args.repeats}
        args.json.write_text(json.dumps({**meta, "rows": [asdict(row) for row in rows]}, indent=2) + "\n")
        logger.info("wrote %s", args.json)
    return rows


if __name__ == "__main__":
    main()
