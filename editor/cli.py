"""Command line: `python -m editor edit INPUT -i "instruction" -o OUT.mp4 --model DIR`, and `convert`.

Exit codes: 0 done, 2 bad arguments or input (the message says which), 3 the model could not be loaded, 1 anything
else. Errors are one line on stderr; `--debug` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .loading import PRECISIONS
from .masks import PROPAGATIONS
from .memory import PLANS
from .presets import DEFAULT_MODEL, PRESETS
from .quantization import BACKENDS, METHODS

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_MODEL = 0, 1, 2, 3

logger = logging.getLogger("editor")


class CliError(Exception):
    """A failure with a message for the user and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m editor", description="Instruction-based video editing (ICVE).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True)

    edit = commands.add_parser("edit", help="edit a video clip as an instruction says")
    edit.add_argument("input", type=Path, help="source video (mp4, mov, webm, mkv, gif)")
    edit.add_argument("-i", "--instruction", required=True, help='what to change, e.g. "replace the dog with a cat"')
    edit.add_argument("-o", "--output", type=Path, required=True, help="edited video to write (.mp4)")
    edit.add_argument(
        "--model", default=DEFAULT_MODEL,
        help=f"a preset ({', '.join(PRESETS)}; default {DEFAULT_MODEL}) or a folder written by save_pretrained",
    )  # fmt: skip
    edit.add_argument("--base", help="icve: HunyuanVideo base folder (diffusers layout) or hub id")
    edit.add_argument("--transformer", help="icve: ICVE transformer folder (original or diffusers layout) or hub id")
    edit.add_argument(
        "--precision", choices=sorted(PRECISIONS),
        help="bf16 where it is faster (CUDA; AVX512-BF16 or AMX CPUs where it times faster), else fp32, by default",
    )  # fmt: skip
    edit.add_argument("--quantization", choices=METHODS, default="none", help="int8 or nf4 weights for the big parts")
    edit.add_argument("--quant-backend", choices=BACKENDS, default="auto", help="bitsandbytes (CUDA) or torchao")
    edit.add_argument("--memory", choices=PLANS, default="auto", help="where the parts live while editing")
    edit.add_argument("--max-memory", type=float, help="GiB the auto memory plan may use (default: what is free)")
    edit.add_argument("--negative-prompt", help="text of the unconditional guidance branch")
    edit.add_argument("--steps", type=int, help="denoising steps (model default if omitted)")
    edit.add_argument("--guidance", type=float, help="classifier-free guidance scale (1 disables it)")
    edit.add_argument("--embedded-guidance", type=float, help="embedded guidance of guidance-distilled models")
    edit.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same edit")
    edit.add_argument("--frames", type=int, help="frames to edit, k*4+1 (default: as many as fit the model)")
    edit.add_argument("--height", type=int, help="output height, a multiple of 16")
    edit.add_argument("--width", type=int, help="output width, a multiple of 16")
    edit.add_argument("--fps", type=float, help="frame rate to resample the source to (model default if omitted)")
    edit.add_argument("--start", type=float, default=0.0, help="start of the clip in the source, seconds")
    edit.add_argument("--end", type=float, help="end of the clip in the source, seconds")
    edit.add_argument("--resize", choices=("crop", "pad"), default="crop", help="fit the frame by cropping or padding")
    edit.add_argument(
        "--mask", type=Path, help="edit only inside this mask: an image (white = edit; one frame) or a mask video"
    )
    edit.add_argument("--mask-frame", type=int, default=0, help="the frame an image mask was drawn on (0 = first)")
    edit.add_argument(
        "--mask-propagation", choices=PROPAGATIONS, default="static",
        help="an image mask stays in place (static) or follows the content (track, optical flow)",
    )  # fmt: skip
    edit.add_argument("--mask-feather", type=float, default=4.0, help="soft edge inside the mask, in pixels")
    edit.add_argument("--side-by-side", type=Path, help="also write source | edit side by side to this .mp4")
    edit.add_argument("--device", help="torch device (default: cuda if available, else cpu)")

    assemble = commands.add_parser(
        "assemble", help="write a preset's parts as one pipeline folder (to cache latents and train from)"
    )
    assemble.add_argument("-o", "--output", type=Path, required=True, help="pipeline folder to write")
    assemble.add_argument("--model", default="icve", help="the preset whose parts and defaults to use")
    assemble.add_argument("--base", help="HunyuanVideo base folder (diffusers layout) or hub id")
    assemble.add_argument(
        "--transformer", help="transformer folder or checkpoint; the base's own text-to-video one for pretraining"
    )
    assemble.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32", help="of the saved weights")

    convert = commands.add_parser("convert", help="convert an original-format HunyuanVideo/ICVE transformer")
    convert.add_argument("weights", type=Path, help="original-format .safetensors state dict")
    convert.add_argument("-o", "--output", type=Path, required=True, help="diffusers model folder to write")
    convert.add_argument("--config", type=Path, help="the original config.json (default: beside the weights)")
    return parser


def _load_pipeline(args: argparse.Namespace):
    from .loading import LoadOptions, load_pipeline
    from .quantization import Quantization

    try:
        options = LoadOptions(
            device=args.device, precision=args.precision,
            quantization=Quantization(args.quantization, args.quant_backend), memory_plan=args.memory,
            max_memory_gib=args.max_memory, frames=args.frames, height=args.height, width=args.width,
        )  # fmt: skip
        return load_pipeline(args.model, base=args.base, transformer=args.transformer, options=options)
    except (OSError, ValueError) as error:
        raise CliError(f"could not load the model {args.model}: {error}", EXIT_MODEL) from error


def run_convert(args: argparse.Namespace) -> None:
    from .convert import convert_checkpoint

    config = args.config or args.weights.parent / "config.json"
    try:
        convert_checkpoint(args.weights, config, args.output)
    except (OSError, ValueError) as error:
        raise CliError(str(error), EXIT_BAD_INPUT) from error
    logger.info("wrote %s", args.output)


def run_assemble(args: argparse.Namespace) -> None:
    from .loading import LoadOptions, load_pipeline

    try:
        options = LoadOptions(device="cpu", precision=args.precision, memory_plan="none")
        pipe = load_pipeline(args.model, base=args.base, transformer=args.transformer, options=options)
    except (OSError, ValueError) as error:
        raise CliError(f"could not load the model {args.model}: {error}", EXIT_MODEL) from error
    pipe.save_pretrained(args.output, safe_serialization=True)
    logger.info("wrote %s", args.output)


def run_edit(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from .video import VideoError, probe_video, write_video

    if args.output.suffix.lower() != ".mp4":
        raise CliError(f"--output {args.output} must end in .mp4", EXIT_BAD_INPUT)
    try:
        probe_video(args.input)
    except VideoError as error:
        raise CliError(str(error), EXIT_BAD_INPUT) from error
    if args.mask is not None and not args.mask.is_file():
        raise CliError(f"--mask {args.mask} is not a file", EXIT_BAD_INPUT)

    pipe = _load_pipeline(args)
    pipe.set_progress_bar_config(disable=True)
    bars: list[tqdm] = []

    def show(progress) -> None:
        # One bar per stage (encode, denoise, decode), each closed when the next begins.
        if not bars or bars[-1].desc != progress.stage:
            if bars:
                bars[-1].close()
            bars.append(tqdm(total=progress.total, desc=progress.stage, unit="step"))
        bars[-1].n = progress.step
        bars[-1].refresh()

    generator = torch.Generator().manual_seed(args.seed)
    try:
        result = pipe(
            args.input,
            args.instruction,
            negative_prompt=args.negative_prompt,
            height=args.height,
            width=args.width,
            num_frames=args.frames,
            fps=args.fps,
            start=args.start,
            end=args.end,
            resize_mode=args.resize,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            embedded_guidance_scale=args.embedded_guidance,
            generator=generator,
            progress_callback=show,
            mask=args.mask,
            mask_frame=args.mask_frame,
            mask_propagation=args.mask_propagation,
            mask_feather=args.mask_feather,
        )
    except ValueError as error:  # VideoError and MaskError are ValueErrors
        raise CliError(str(error), EXIT_BAD_INPUT) from error
    finally:
        if bars:
            bars[-1].close()

    edited = result.frames[0]
    write_video(args.output, edited, result.fps, audio_from=args.input, audio_start=result.source_start)
    frames, height, width = edited.shape[:3]
    logger.info("wrote %s (%d frames, %dx%d, %g fps)", args.output, frames, width, height, result.fps)
    if args.side_by_side:
        pair = np.concatenate([result.source_frames, edited], axis=2)  # F, H, 2W, 3
        write_video(args.side_by_side, pair, result.fps, audio_from=args.input, audio_start=result.source_start)
        logger.info("wrote %s", args.side_by_side)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    # Optional kernels that bitsandbytes and torchao cannot find at import are not errors of this command.
    for noisy in ("bitsandbytes", "torchao"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.debug else logging.ERROR)
    try:
        {"convert": run_convert, "assemble": run_assemble, "edit": run_edit}[args.command](args)
    except CliError as error:
        if args.debug:
            logger.exception("failed")
        sys.stderr.write(f"error: {error}\n")
        return error.code
    except Exception as error:  # the last line of defence: one clear line, not a traceback
        if args.debug:
            logger.exception("failed")
        sys.stderr.write(f"error: {type(error).__name__}: {error}\n")
        return EXIT_FAILED
    return EXIT_OK
