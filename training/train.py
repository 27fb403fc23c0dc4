"""Train the in-context editing transformer on a latent cache with flow matching.

`python -m training.train --config configs/train/demo.yaml [--resume] name=value ...`

Reads top to bottom: config, model, data, optimizer, then the loop. Each optimizer step draws
`gradient_accumulation` batches of cached (source, target, instruction) samples, replaces some instructions with
the empty one (so classifier-free guidance has an unconditional model to use), noises the target at a logit-normal
sigma and regresses the model's velocity on `noise - target`, the clean source in context. Every
`checkpoint_every` steps `output/checkpoints/step-NNNNNN/` is written atomically with everything needed to continue
bit for bit (`--resume`): the transformer, optimizer and LR-schedule state, RNG states and the data position. The
last `keep_last` are kept. The trained transformer ends in `output/transformer`; `output/log.jsonl` has the losses.

Exit codes: 0 done, 2 bad arguments, config or input.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from diffusers.optimization import get_constant_schedule_with_warmup
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from editor.transformer import ICVETransformer3DModel
from training import flow_matching
from training.cache import TEXT_KEYS, CachedDataset
from training.config import load_config, to_dict

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
CHECKPOINT_PREFIX = "step-"


@dataclass
class TrainConfig:
    """Everything a training run depends on."""

    cache: Path | None = None  # a folder made by `python -m training.cache`
    output: Path = Path("runs/train")
    init: str = "scratch"  # "scratch" (built from `transformer`) or a pipeline / transformer folder to fine-tune
    transformer: dict[str, Any] | None = None  # ICVETransformer3DModel arguments, for init=scratch
    steps: int = 1000  # optimizer steps
    batch_size: int = 1
    lr: float = 1e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    gradient_accumulation: int = 1  # batches per optimizer step
    grad_clip: float | None = 1.0  # max gradient norm; None turns clipping off
    instruction_dropout: float = 0.1  # probability that a sample trains with the empty instruction
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: float = 1.0
    guidance: float | None = 1.0  # embedded guidance for guidance-distilled models (passed as guidance * 1000)
    mixed_precision: str = "no"  # "no" or "bf16"
    gradient_checkpointing: bool = False
    checkpoint_every: int = 500
    keep_last: int = 3
    log_every: int = 10
    seed: int = 0


def check_config(config: TrainConfig) -> None:
    """Raise ValueError naming the first bad value."""
    if config.cache is None:
        raise ValueError("cache is required (cache=path/to/cache)")
    for name in ("steps", "batch_size", "gradient_accumulation", "checkpoint_every", "keep_last", "log_every"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    if isinstance(config.warmup_steps, bool) or not isinstance(config.warmup_steps, int) or config.warmup_steps < 0:
        raise ValueError(f"warmup_steps={config.warmup_steps!r} must be a non-negative integer")
    if not isinstance(config.lr, int | float) or not config.lr > 0:
        raise ValueError(f"lr={config.lr!r} must be positive")
    if not isinstance(config.weight_decay, int | float) or config.weight_decay < 0:
        raise ValueError(f"weight_decay={config.weight_decay!r} must be non-negative")
    if config.grad_clip is not None and not (isinstance(config.grad_clip, int | float) and config.grad_clip > 0):
        raise ValueError(f"grad_clip={config.grad_clip!r} must be positive or null")
    if not isinstance(config.instruction_dropout, int | float) or not 0 <= config.instruction_dropout <= 1:
        raise ValueError(f"instruction_dropout={config.instruction_dropout!r} must be in [0, 1]")
    if not isinstance(config.logit_std, int | float) or config.logit_std < 0:
        raise ValueError(f"logit_std={config.logit_std!r} must be non-negative")
    if not isinstance(config.shift, int | float) or not config.shift > 0:
        raise ValueError(f"shift={config.shift!r} must be positive")
    if config.mixed_precision not in ("no", "bf16"):
        raise ValueError(f"mixed_precision={config.mixed_precision!r} must be 'no' or 'bf16'")
    if config.init == "scratch" and not isinstance(config.transformer, dict):
        raise ValueError("init=scratch needs a `transformer` mapping of ICVETransformer3DModel arguments")


# Model ------------------------------------------------------------------------------------------------------------


def build_transformer(config: TrainConfig) -> ICVETransformer3DModel:
    """The transformer to train: fresh from `config.transformer`, or loaded from a pipeline or transformer folder."""
    if config.init == "scratch":
        torch.manual_seed(config.seed)  # the initial weights are part of what the seed fixes
        return ICVETransformer3DModel(**config.transformer)
    init = Path(config.init)
    if (init / "transformer" / "config.json").is_file():
        return ICVETransformer3DModel.from_pretrained(init, subfolder="transformer")
    if (init / "config.json").is_file():
        return ICVETransformer3DModel.from_pretrained(init)
    raise FileNotFoundError(f"init={config.init!r} is neither 'scratch' nor a pipeline or transformer folder")


# Data -------------------------------------------------------------------------------------------------------------


class EpochBatches:
    """Batches of sample indices, reshuffled each epoch from (seed, epoch) alone, starting at batch `start`.

    The order depends on nothing but the seed, so the position (batches drawn so far) is all a checkpoint needs to
    continue the same stream. An epoch's leftover samples are dropped: every batch has `batch_size` samples.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, start: int = 0) -> None:
        if num_samples < batch_size:
            raise ValueError(f"batch_size={batch_size} is larger than the cache ({num_samples} samples)")
        self.num_samples, self.batch_size, self.seed, self.start = num_samples, batch_size, seed, start
        self.per_epoch = num_samples // batch_size

    def __iter__(self) -> Iterator[list[int]]:
        epoch, offset = divmod(self.start, self.per_epoch)
        while True:
            order = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(self.seed + epoch))
            for b in range(offset, self.per_epoch):
                yield order[b * self.batch_size : (b + 1) * self.batch_size].tolist()
            epoch, offset = epoch + 1, 0


def drop_instructions(batch: dict, empty: dict[str, torch.Tensor], p: float, generator: torch.Generator) -> None:
    """Swap each sample's instruction for the empty one with probability `p`, in place."""
    drop = torch.rand(batch["text_states"].shape[0], generator=generator, device=generator.device) < p
    for key in TEXT_KEYS:
        value = batch[key]
        keep = drop.to(value.device).reshape(-1, *([1] * (value.ndim - 1)))
        batch[key] = torch.where(keep, empty[key].to(value.device, value.dtype), value)


# Checkpoints ------------------------------------------------------------------------------------------------------


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer state dict as tensors (for safetensors) plus everything else (for JSON)."""
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in [*tensors.items(), *meta["scalars"].items()]:
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def checkpoint_dirs(output: Path) -> list[Path]:
    """Finished checkpoints, oldest first (temporary folders start with '.' and are never listed)."""
    root = Path(output) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)]
    return sorted(found, key=lambda p: int(p.name.removeprefix(CHECKPOINT_PREFIX)))


def save_checkpoint(
    output: Path, step: int, model, optimizer, scheduler, generator: torch.Generator, keep_last: int
) -> Path:
    """Write `checkpoints/step-NNNNNN` through a temporary folder renamed when complete, then drop old ones."""
    root = Path(output) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{CHECKPOINT_PREFIX}{step:06d}"
    tmp = root / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)  # left by a run killed mid-write
    tmp.mkdir()
    model.save_pretrained(tmp / "transformer", safe_serialization=True)
    tensors, optimizer_meta = _flatten_optimizer(optimizer.state_dict())
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    rng = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda{i}": state for i, state in enumerate(torch.cuda.get_rng_state_all())})
    save_file(rng, str(tmp / "rng.safetensors"))
    state = {"step": step, "optimizer": optimizer_meta, "scheduler": scheduler.state_dict()}
    (tmp / "state.json").write_text(json.dumps(state, indent=1) + "\n")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoint_dirs(output)[:-keep_last]:
        shutil.rmtree(old)
    return final


def load_checkpoint(path: Path, optimizer, scheduler, generator: torch.Generator) -> int:
    """Restore optimizer, schedule and RNG states (the weights are loaded with the model); return the step."""
    state = json.loads((path / "state.json").read_text())
    optimizer.load_state_dict(_unflatten_optimizer(load_file(str(path / "optimizer.safetensors")), state["optimizer"]))
    scheduler.load_state_dict(state["scheduler"])
    rng = load_file(str(path / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["generator"])
    cuda = [rng[f"cuda{i}"] for i in range(torch.cuda.device_count()) if f"cuda{i}" in rng]
    if cuda:
        torch.cuda.set_rng_state_all(cuda)
    return int(state["step"])


def _trim_log(log_path: Path, step: int) -> None:
    """Forget log lines past the checkpoint being resumed: those steps are about to be trained again."""
    if not log_path.is_file():
        return
    lines = [line for line in log_path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    log_path.write_text("".join(line + "\n" for line in lines))


# Training ---------------------------------------------------------------------------------------------------------


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Run (or with `resume`, continue) training; return the folder of the saved transformer."""
    check_config(config)
    output = Path(config.output)
    latest = checkpoint_dirs(output)[-1] if checkpoint_dirs(output) else None
    if latest is not None and not resume:
        raise ValueError(f"output={output} already holds checkpoints; pass --resume or choose another output")
    if resume and latest is None:
        logger.warning("no checkpoint in %s: starting from the beginning", output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))

    accelerator = Accelerator(
        mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.gradient_accumulation
    )
    device = accelerator.device

    # Model: a checkpoint's weights replace the initial ones when resuming.
    model = ICVETransformer3DModel.from_pretrained(latest / "transformer") if latest else build_transformer(config)
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    model.train()
    guidance = None
    if model.config.guidance_embeds:
        if config.guidance is None:
            raise ValueError("guidance=None, but this model embeds a guidance value; set guidance (e.g. 1.0)")
        guidance = float(config.guidance) * 1000.0

    # Data
    dataset = CachedDataset(config.cache)
    empty = dataset.empty_prompt()
    position = 0  # batches drawn so far

    # Optimizer and schedule
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = get_constant_schedule_with_warmup(optimizer, num_warmup_steps=config.warmup_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    # Noise, sigmas and instruction dropout come from this generator alone, so its state pins them on resume.
    generator = torch.Generator(device).manual_seed(config.seed)

    start = 0
    if latest is not None:
        start = load_checkpoint(latest, optimizer, scheduler, generator)
        position = start * config.gradient_accumulation
        _trim_log(output / "log.jsonl", start)
        logger.info("resumed from %s at step %d", latest, start)
    batches = EpochBatches(len(dataset), config.batch_size, config.seed, start=position)
    # A seeded DataLoader generator keeps the loader from drawing on the global RNG.
    loader = iter(DataLoader(dataset, batch_sampler=batches, generator=torch.Generator().manual_seed(config.seed)))

    logger.info("training %d steps from step %d on %d samples (%s)", config.steps, start, len(dataset), device)
    window_loss, window_samples, window_start = 0.0, 0, time.perf_counter()
    with (output / "log.jsonl").open("a") as log:
        for step in range(start + 1, config.steps + 1):
            step_loss, grad_norm = 0.0, None
            for _ in range(config.gradient_accumulation):
                batch = next(loader)
                batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
                with accelerator.accumulate(model):
                    if config.instruction_dropout > 0:
                        drop_instructions(batch, empty, config.instruction_dropout, generator)
                    target = batch["target_latents"]
                    b = target.shape[0]
                    sigma = flow_matching.sample_timesteps(
                        b, generator, logit_mean=config.logit_mean, logit_std=config.logit_std, shift=config.shift
                    )
                    noise = torch.randn(target.shape, generator=generator, device=device, dtype=target.dtype)
                    pred = model(
                        hidden_states=flow_matching.noisy(target, noise, sigma),
                        timestep=sigma * 1000.0,
                        encoder_hidden_states=batch["text_states"],
                        encoder_attention_mask=batch["text_mask"],
                        pooled_projections=batch["text_pooled"],
                        guidance=torch.full((b,), guidance, device=device) if guidance is not None else None,
                        source_latents=batch["source_latents"],
                        return_dict=False,
                    )[0]
                    loss = flow_matching.loss(pred, flow_matching.velocity_target(target, noise))
                    if not torch.isfinite(loss):
                        raise RuntimeError(f"non-finite loss {loss.item()} at step {step}; lower lr or check the data")
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.grad_clip is not None:
                        grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), config.grad_clip))
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                step_loss += loss.item() / config.gradient_accumulation
                window_samples += b

            window_loss += step_loss
            if step % config.log_every == 0 or step == config.steps:
                elapsed = time.perf_counter() - window_start
                steps_in_window = step - max(start, (step - 1) // config.log_every * config.log_every)
                record = {
                    "step": step,
                    "loss": window_loss / steps_in_window,
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": grad_norm,
                    "samples_per_s": window_samples / elapsed if elapsed > 0 else math.nan,
                }
                log.write(json.dumps(record) + "\n")
                log.flush()
                logger.info("step %d loss %.4f lr %.2e", step, record["loss"], record["lr"])
                window_loss, window_samples, window_start = 0.0, 0, time.perf_counter()
            if step % config.checkpoint_every == 0:
                path = save_checkpoint(
                    output, step, accelerator.unwrap_model(model), optimizer, scheduler, generator, config.keep_last
                )
                logger.info("checkpoint %s", path)

    final = output / "transformer"
    accelerator.unwrap_model(model).save_pretrained(final, safe_serialization=True)
    logger.info("saved %s", final)
    return final


# Command line -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, help="YAML config (TrainConfig fields)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in output")
    parser.add_argument("overrides", nargs="*", help="name=value settings, e.g. cache=data/cache steps=100")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(TrainConfig, args.config, args.overrides)
        final = train(config, resume=args.resume)
    except (ValueError, FileNotFoundError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    sys.stdout.write(f"trained transformer -> {final}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
