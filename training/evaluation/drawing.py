"""Does a model draw what a caption names? Text-to-video samples of a base model, checked by the world's describer.

`python -m training.evaluation.drawing --model PIPELINE --captions MANIFEST [--count N] [--output results.json]
[--strips DIR]`

Each captioned clip's caption is sampled from noise with the plain text-to-video forward (no source in context), and
the describer compares the sample with the captioned clip itself: how many of its objects are there in the right
colour, in the right colour and shape, and whether the background is the same kind. A model that never learned to
draw scores near zero on shapes; a model that draws well approaches the clips' own scores (1.0).

Exit codes: 0 done, 2 bad arguments or input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)


@torch.no_grad()
def generate(pipe, prompt: str, shape: tuple[int, ...], *, steps: int, guidance_scale: float, seed: int) -> np.ndarray:
    """uint8 `[F, H, W, 3]` frames drawn from noise for `prompt`, latents of `shape` `[1, C, F', H', W']`."""
    device = pipe._execution_device
    dtype = pipe.transformer.dtype
    embeds = pipe.encode_prompt([prompt], device, dtype)
    empty = pipe.encode_prompt([pipe.defaults.negative_prompt], device, dtype)
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device)
    guidance = None
    if pipe.transformer.config.guidance_embeds:
        guidance = torch.full((1,), pipe.defaults.embedded_guidance_scale * 1000.0, device=device)

    def velocity(timestep: torch.Tensor, text) -> torch.Tensor:
        return pipe.transformer(
            hidden_states=latents.to(dtype), timestep=timestep, encoder_hidden_states=text.states,
            encoder_attention_mask=text.mask, pooled_projections=text.pooled, guidance=guidance, return_dict=False,
        )[0].float()  # fmt: skip

    for t in pipe.prepare_timesteps(steps, device):
        timestep = t.expand(1).float()
        v = velocity(timestep, embeds)
        if guidance_scale > 1.0:
            unconditional = velocity(timestep, empty)
            v = unconditional + guidance_scale * (v - unconditional)
        latents = pipe.scheduler.step(v, t, latents, return_dict=False)[0]
    return pipe.decode_latents(latents)[0]


def compare(drawn: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """The share of the true clip's whole objects the drawn clip has (by colour; by colour and shape), and whether
    the background is the same kind."""
    from training.world import describe

    want, got = describe(truth), describe(drawn)
    wanted = [(o.colour, o.shape) for o in want.complete]
    by_colour = Counter(o.colour for o in got.objects)
    by_both = Counter((o.colour, o.shape) for o in got.objects)
    colours = sum(min(n, by_colour[c]) for c, n in Counter(c for c, _ in wanted).items())
    both = sum(min(n, by_both[k]) for k, n in Counter(wanted).items())
    total = max(1, len(wanted))
    return {"colour": colours / total, "colour_and_shape": both / total,
            "background": float(want.background == got.background)}  # fmt: skip


def score(
    pipe, records: list[dict], *, steps: int, guidance_scale: float, seed: int = 0, strips: Path | None = None
) -> dict:
    """Mean `compare` scores over `records` (captioned clips), with the scores of every clip; with `strips`, a PNG
    per clip there of the captioned clip above the sample."""
    from training.curation.manifest import read_clip
    from training.evaluation.report import write_strip

    d = pipe.defaults
    geometry = {"fps": d.fps, "frames": d.num_frames, "height": d.height, "width": d.width}
    samples, shape = [], None
    for number, record in enumerate(records):
        truth = read_clip(record["target"], **geometry)
        if shape is None:  # every clip is read at the model's geometry: one encode gives the latents' shape
            shape = tuple(pipe.encode_video(truth, pipe._execution_device).shape)
        drawn = generate(pipe, record["instruction"], shape, steps=steps, guidance_scale=guidance_scale,
                         seed=seed + number)  # fmt: skip
        samples.append({"id": record["id"], "caption": record["instruction"], **compare(drawn, truth)})
        if strips is not None:
            path = write_strip(strips / f"{record['id']}.png", [("captioned", truth), ("drawn", drawn)], count=3)
            samples[-1]["strip"] = str(path)
        logger.info("[%d/%d] %s: %s", number + 1, len(records), record["id"], samples[-1])
    means = {key: float(np.mean([s[key] for s in samples])) for key in ("colour", "colour_and_shape", "background")}
    return {"count": len(samples), "steps": steps, "guidance_scale": guidance_scale, "means": means,
            "samples": samples}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluation.drawing", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="pipeline folder")
    parser.add_argument("--captions", type=Path, required=True, help="manifest of captioned clips")
    parser.add_argument("--count", type=int, default=60, help="the manifest's first this many clips")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (the model's default when left out)")
    parser.add_argument("--guidance", type=float, default=None, help="CFG scale (the model's default when left out)")
    parser.add_argument("--output", type=Path, default=None, help="results JSON")
    parser.add_argument("--strips", type=Path, default=None, help="folder for a PNG per clip: captioned over drawn")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from editor.loading import LoadOptions, load_pipeline
    from training.curation.manifest import read_manifest

    try:
        if args.count < 1:
            raise ValueError(f"--count {args.count} must be positive")
        records = read_manifest(args.captions)[: args.count]
        pipe = load_pipeline(args.model, options=LoadOptions(precision="fp32"))
    except (ValueError, FileNotFoundError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    d = pipe.defaults
    steps = d.num_inference_steps if args.steps is None else args.steps
    guidance = d.guidance_scale if args.guidance is None else args.guidance
    results = {"model": str(args.model), "captions": str(args.captions), **score(pipe, records, steps=steps,
               guidance_scale=guidance, strips=args.strips)}  # fmt: skip
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=1) + "\n")
    sys.stdout.write(json.dumps(results["means"]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
