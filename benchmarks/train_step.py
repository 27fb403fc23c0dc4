"""Seconds per training step of the demo model: eager against `torch.compile`, fp32 against bf16 autocast.

The demo recipe spends nearly all its hours in optimizer steps, so their cost sets its wall time. This script times
the step `training.train` takes (forward with the clean source in context, change-weighted flow-matching loss,
backward, gradient clipping, AdamW) on the demo model's transformer (`training/recipes/demo_model.py`, random
weights: the cost does not depend on their values), at the recipe's batch size, on latents of the demo codec's shape
(128 channels, 3 latent frames of 8x8: a 64x64 clip of 9 frames) and all-MiniLM-L6-v2 text states of real
instructions. Variants, each with its own model and optimizer built from the same seed:

* `eager`: what `training.train` runs by default;
* `compiled`: `compile=true`, the transformer compiled in place by `torch.compile` (inductor);
* `* bf16`: under `torch.autocast(bfloat16)`, as `mixed_precision=bf16` runs it.

`first step` is the first call's wall time, compilation included; the median of `--repeats` timed steps follows
`--warmup` untimed ones, the variants taking turns so that whatever else the machine does falls on all of them.

Run from the repository root: `python benchmarks/train_step.py` (see `--help`).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from editor.text_encoders import SentenceTextEncoder  # noqa: E402
from editor.transformer import ICVETransformer3DModel  # noqa: E402
from training import flow_matching  # noqa: E402
from training.recipes.demo_model import TRANSFORMER  # noqa: E402

logger = logging.getLogger("benchmarks.train_step")

INSTRUCTIONS = [
    "make the red ball blue", "take the small green triangle out of the scene", "add a yellow star in the top left",
    "replace the white ring with a square", "give it a striped background", "make it look like an old film",
]  # fmt: skip
# name: (bf16 autocast, compiled)
VARIANTS = {
    "eager": (False, False), "compiled": (False, True), "eager bf16": (True, False), "compiled bf16": (True, True),
}  # fmt: skip


def demo_transformer(text_dim: int, pooled_dim: int, channels: int) -> ICVETransformer3DModel:
    torch.manual_seed(0)
    return ICVETransformer3DModel(
        in_channels=channels, out_channels=channels, text_embed_dim=text_dim, pooled_projection_dim=pooled_dim,
        **TRANSFORMER,
    )  # fmt: skip


def build_step(
    model: ICVETransformer3DModel, bf16: bool, compiled: bool, change_weight: float
) -> Callable[[dict[str, torch.Tensor], torch.Generator], float]:
    model.train()
    if compiled:
        model.compile()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(batch: dict[str, torch.Tensor], generator: torch.Generator) -> float:
        target, source = batch["target_latents"], batch["source_latents"]
        sigma = flow_matching.sample_timesteps(target.shape[0], generator, shift=2.0)
        noise = torch.randn(target.shape, generator=generator)
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            pred = model(
                hidden_states=flow_matching.noisy(target, noise, sigma), timestep=sigma * 1000.0,
                encoder_hidden_states=batch["text_states"], encoder_attention_mask=batch["text_mask"],
                pooled_projections=batch["text_pooled"], source_latents=source, return_dict=False,
            )[0]  # fmt: skip
            weights = flow_matching.change_weights(source, target, change_weight)
            loss = flow_matching.loss(pred, flow_matching.velocity_target(target, noise), weights)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("bitsandbytes", "torchao"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    text = SentenceTextEncoder.from_package("all-MiniLM-L6-v2")
    b, channels = args.batch_size, 128
    with torch.no_grad():
        prompts = text([INSTRUCTIONS[i % len(INSTRUCTIONS)] for i in range(b)])
    target = torch.randn(b, channels, 3, 8, 8)  # B, C, F, H, W: a 64x64 clip of 9 frames through the demo codec
    source = target.clone()
    source[..., 2:5, 2:5] = torch.randn(b, channels, 3, 3, 3)  # a local edit: the change weight has work to do
    batch = {
        "target_latents": target, "source_latents": source, "text_states": prompts.states, "text_mask": prompts.mask,
        "text_pooled": prompts.pooled,
    }  # fmt: skip

    models = {name: demo_transformer(text.states_dim, text.pooled_dim, channels) for name in args.variants}
    steps = {name: build_step(models[name], *VARIANTS[name], change_weight=5.0) for name in args.variants}
    generators = {name: torch.Generator().manual_seed(0) for name in steps}
    first: dict[str, float] = {}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for index in range(args.warmup + args.repeats):
        for name, step in steps.items():
            begin = time.perf_counter()
            step(batch, generators[name])
            elapsed = time.perf_counter() - begin
            if index == 0:
                first[name] = elapsed
                logger.info("%s: first step %.1f s", name, elapsed)
            if index >= args.warmup:
                times[name].append(elapsed)

    medians = {name: statistics.median(values) for name, values in times.items()}
    reference = medians.get("eager", next(iter(medians.values())))
    parameters = sum(p.numel() for p in next(iter(models.values())).parameters()) / 1e6
    out = sys.stdout
    out.write(f"\ndemo transformer {parameters:.1f}M, batch {b}, torch {torch.__version__}, ")
    out.write(f"{torch.get_num_threads()} threads, median of {args.repeats}\n\n")
    out.write("| variant | first step (s) | s/step | samples/s | speed vs eager |\n|---|---|---|---|---|\n")
    for name, seconds in medians.items():
        out.write(f"| {name} | {first[name]:.1f} | {seconds:.3f} | {b / seconds:.2f} | {reference / seconds:.2f} |\n")
    if args.json:
        record = {"seconds_per_step": medians, "first_step_s": first, "args": vars(args) | {"json": str(args.json)}}
        args.json.write_text(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
