"""Train the in-context editing transformer on a latent cache with flow matching: stage 1 and stage 2 alike.

`accelerate launch -m training.train --config configs/train/stage1.yaml [--resume] name=value ...`
(`python -m training.train ...` runs one process.)

Reads top to bottom: config, model, data, optimizer, then the loop. Each optimizer step draws
`gradient_accumulation` batches of cached (source, target, instruction) samples per process, replaces some
instructions with the empty one (so classifier-free guidance has an unconditional model to use), noises the target
at a logit-normal sigma and regresses the model's velocity on `noise - target`, the clean source in context.

Stage 1 (pretraining on unpaired-clip pairs) and stage 2 (fine-tuning on editing pairs) differ only in their
configs: stage 2's `init` is stage 1's `output/pipeline`. A cache of captioned clips (no sources) trains the same
transformer as a plain text-to-video model, the base that stage 1 starts from when no pretrained one is at hand.
`init` may also be a HunyuanVideo base in diffusers' layout, an original-format checkpoint, or `scratch` (a new model
from the `transformer:` mapping).

Every `checkpoint_every` steps a checkpoint is written (see `training/checkpoint.py`); `--resume` continues from the
latest one bit for bit. Logs go to `output/log.jsonl` and `output/tensorboard/`, a loss curve to `output/loss.png`,
validation edits to `output/samples/`. The result is `output/pipeline/`, a pipeline folder the editor loads (LoRA
merged, EMA weights when EMA is on); with LoRA the adapter alone is also in `output/lora/`.

Exit codes: 0 done, 2 bad arguments, config or input, 1 a failed run (e.g. a non-finite loss).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from editor.convert import load_transformer
from editor.pipeline import VideoEditPipeline
from editor.transformer import ICVETransformer3DModel
from training import flow_matching
from training.cache import TEXT_KEYS, CachedDataset
from training.checkpoint import (
    LORA_FILE,
    TRANSFORMER_DIR,
    checkpoint_dirs,
    checkpoint_step,
    load_training_state,
    save_checkpoint,
)
from training.config import load_config, to_dict
from training.ema import EMA
from training.export import pipeline_folder_of, save_pipeline
from training.lora import LoraSettings, add_lora, load_lora_state_dict, merge_lora, save_adapter
from training.run_log import RunLog, plot_loss_curve
from training.validation import SAMPLES_DIR, ValidationConfig, load_validation_set, write_samples

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "adamw8bit")


@dataclass
class TrainConfig:
    """Everything a training run depends on."""

    cache: Path | None = None  # a folder made by `python -m training.cache`
    pairs: int | None = None  # train on a fixed random subset of this many cached pairs (all when None)
    output: Path = Path("runs/train")
    init: str = "scratch"  # "scratch", a pipeline folder (e.g. a previous stage), a transformer folder or checkpoint
    transformer: dict[str, Any] | None = None  # ICVETransformer3DModel arguments, for init=scratch
    pipeline: Path | None = None  # whose VAE/text encoder made the cache; the cache's `model` when None
    steps: int = 1000  # optimizer steps
    batch_size: int = 1  # per process
    optimizer: str = "adamw"  # or "adamw8bit" (bitsandbytes, CUDA): optimizer state in a quarter of the memory
    lr: float = 1e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    decay_steps: int = 0  # the LR falls linearly to zero over the last this many steps (0: constant to the end)
    restarts: list[int] = field(default_factory=list)  # steps where the schedule starts over (warm restarts)
    gradient_accumulation: int = 1  # batches per optimizer step
    grad_clip: float | None = 1.0  # max gradient norm; None turns clipping off
    lora: LoraSettings = field(default_factory=LoraSettings)  # rank 0: full fine-tuning
    ema_decay: float | None = None  # e.g. 0.999; the saved model and validation edits then use the average
    instruction_dropout: float = 0.1  # probability that a sample trains with the empty instruction
    # Probability that a sample keeps its instruction's tokens but gets the empty instruction's pooled vector. The
    # pooled vector modulates every block and is the easy path, which a model trained without this mostly reads.
    pooled_dropout: float = 0.0
    change_weight: float = 1.0  # loss weight where target latents differ from the source's (>1 stresses edits)
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: float = 1.0
    guidance: float | None = 1.0  # embedded guidance for guidance-distilled models (passed as guidance * 1000)
    mixed_precision: str = "no"  # "no" or "bf16"
    gradient_checkpointing: bool = False
    # torch.compile the transformer (in place, so weights and checkpoints keep their names): a one-off compile of a
    # minute or two, then each step is about a fifth faster on CPU, where the unfused elementwise ops between the
    # matmuls cost as much as the matmuls. Numerics differ from eager in the last bits.
    compile: bool = False
    checkpoint_every: int = 500
    keep_last: int = 3
    log_every: int = 10
    tensorboard: bool = True
    validation: ValidationConfig = field(default_factory=ValidationConfig)
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
    if isinstance(config.decay_steps, bool) or not isinstance(config.decay_steps, int) or config.decay_steps < 0:
        raise ValueError(f"decay_steps={config.decay_steps!r} must be a non-negative integer")
    restarts = config.restarts
    if not isinstance(restarts, list) or any(isinstance(r, bool) or not isinstance(r, int) for r in restarts):
        raise ValueError(f"restarts={restarts!r} must be a list of step numbers")
    if restarts != sorted(set(restarts)) or (restarts and not 0 < restarts[0] <= restarts[-1] < config.steps):
        raise ValueError(f"restarts={restarts!r} must rise strictly, each inside (0, steps={config.steps})")
    # A warmup longer than a short run is fine (the LR never reaches its peak); a decay must fit after the warmup.
    for start, end in schedule_cycles(config.steps, restarts):
        if config.decay_steps and config.warmup_steps + config.decay_steps > end - start:
            where = f"steps={config.steps}" if not restarts else f"the cycle of steps {start}-{end}"
            raise ValueError(f"warmup_steps={config.warmup_steps} + decay_steps={config.decay_steps} exceed {where}")
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={config.optimizer!r} must be one of {OPTIMIZERS}")
    if not isinstance(config.lr, int | float) or not config.lr > 0:
        raise ValueError(f"lr={config.lr!r} must be positive")
    if not isinstance(config.weight_decay, int | float) or config.weight_decay < 0:
        raise ValueError(f"weight_decay={config.weight_decay!r} must be non-negative")
    if config.grad_clip is not None and not (isinstance(config.grad_clip, int | float) and config.grad_clip > 0):
        raise ValueError(f"grad_clip={config.grad_clip!r} must be positive or null")
    if config.ema_decay is not None and not (isinstance(config.ema_decay, float) and 0 < config.ema_decay < 1):
        raise ValueError(f"ema_decay={config.ema_decay!r} must be in (0, 1) or null")
    for name in ("instruction_dropout", "pooled_dropout"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"{name}={value!r} must be in [0, 1]")
    if not isinstance(config.change_weight, int | float) or config.change_weight < 1:
        raise ValueError(f"change_weight={config.change_weight!r} must be >= 1")
    if not isinstance(config.logit_std, int | float) or config.logit_std < 0:
        raise ValueError(f"logit_std={config.logit_std!r} must be non-negative")
    if not isinstance(config.shift, int | float) or not config.shift > 0:
        raise ValueError(f"shift={config.shift!r} must be positive")
    if not isinstance(config.compile, bool):
        raise ValueError(f"compile={config.compile!r} must be true or false")
    if config.mixed_precision not in ("no", "bf16"):
        raise ValueError(f"mixed_precision={config.mixed_precision!r} must be 'no' or 'bf16'")
    if config.init == "scratch" and not isinstance(config.transformer, dict):
        raise ValueError("init=scratch needs a `transformer` mapping of ICVETransformer3DModel arguments")
    config.lora.check()
    if not isinstance(config.validation, ValidationConfig):
        raise ValueError(
            f"validation={config.validation!r} must be a mapping of its settings; validation.manifest=null turns "
            "validation edits off"
        )
    config.validation.check()


# Model ------------------------------------------------------------------------------------------------------------


def build_transformer(config: TrainConfig) -> ICVETransformer3DModel:
    """The model `init` names: new from `config.transformer`, or loaded from a pipeline folder (a previous stage,
    a HunyuanVideo base in diffusers' layout), a transformer folder, or an original-format checkpoint."""
    if config.init == "scratch":
        return ICVETransformer3DModel(**config.transformer)
    init = Path(config.init)
    if (init / "transformer" / "config.json").is_file():
        return ICVETransformer3DModel.from_pretrained(init, subfolder="transformer")
    if (init / "config.json").is_file() or init.suffix == ".safetensors":
        return load_transformer(init)
    raise FileNotFoundError(f"init={config.init!r} is neither 'scratch' nor a pipeline, transformer or checkpoint")


def restore_or_build(config: TrainConfig, latest: Path | None) -> ICVETransformer3DModel:
    """The model to train, with LoRA adapters when asked; a checkpoint's weights when resuming."""
    if latest is not None and not config.lora.enabled:
        return ICVETransformer3DModel.from_pretrained(latest / TRANSFORMER_DIR)
    torch.manual_seed(config.seed)  # new weights (scratch, LoRA's A matrices) are part of what the seed fixes
    model = build_transformer(config)
    if config.lora.enabled:
        add_lora(model, config.lora)
        if latest is not None:
            load_lora_state_dict(model, load_file(str(latest / LORA_FILE)))
    return model


def build_optimizer(config: TrainConfig, parameters: list[torch.nn.Parameter], device: torch.device):
    if config.optimizer == "adamw8bit":
        if device.type != "cuda":
            raise ValueError(f"optimizer=adamw8bit needs CUDA (bitsandbytes), but training runs on {device}")
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)


def schedule_cycles(steps: int, restarts: Sequence[int]) -> list[tuple[int, int]]:
    """The (start, end) steps of each cycle of the LR schedule: one per restart, plus the first."""
    bounds = [0, *restarts, steps]
    return list(pairwise(bounds))


def lr_factor(step: int, steps: int, warmup_steps: int, decay_steps: int, restarts: tuple[int, ...] = ()) -> float:
    """The LR multiplier at `step`: a linear warmup, constant, then a linear fall to zero over the last `decay_steps`.

    The constant middle is what lets a run be extended: more steps with the same decay length replay the first run
    exactly up to where its decay would have begun. The fall at the end is where the loss drops most. A run whose
    decay has already reached zero is extended by a restart instead: from that step the schedule begins again (a warm
    restart, as in SGDR), so the first cycle is replayed exactly and a fresh run reproduces the extended one.
    """
    start, end = next((a, b) for a, b in schedule_cycles(steps, restarts) if step < b or b == steps)
    step, steps = step - start, end - start
    if step < warmup_steps:
        return step / warmup_steps
    if decay_steps and step >= steps - decay_steps:
        return max(0.0, (steps - step) / decay_steps)
    return 1.0


# Data -------------------------------------------------------------------------------------------------------------


class EpochBatches:
    """This process's batches of sample indices, reshuffled each epoch from (seed, epoch) alone.

    Each global batch has `batch_size * num_processes` samples, process `rank` taking its slice, so processes never
    see the same sample in a step. The order depends on nothing but the seed, so the position (global batches drawn
    so far) is all a checkpoint needs to continue the same stream. An epoch's leftover samples are dropped.
    """

    def __init__(
        self, num_samples: int, batch_size: int, seed: int, start: int = 0, rank: int = 0, num_processes: int = 1
    ) -> None:
        global_batch = batch_size * num_processes
        if num_samples < global_batch:
            raise ValueError(
                f"batch_size={batch_size} x {num_processes} processes is larger than the cache ({num_samples} samples)"
            )
        self.num_samples, self.batch_size, self.seed, self.start = num_samples, batch_size, seed, start
        self.rank, self.global_batch = rank, global_batch
        self.per_epoch = num_samples // global_batch

    def __iter__(self) -> Iterator[list[int]]:
        epoch, offset = divmod(self.start, self.per_epoch)
        while True:
            order = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(self.seed + epoch))
            for b in range(offset, self.per_epoch):
                first = b * self.global_batch + self.rank * self.batch_size
                yield order[first : first + self.batch_size].tolist()
            epoch, offset = epoch + 1, 0


def drop_instructions(
    batch: dict,
    empty: dict[str, torch.Tensor],
    p: float,
    generator: torch.Generator,
    keys: Sequence[str] = TEXT_KEYS,
) -> None:
    """Swap each sample's instruction (or only its `keys`) for the empty one's with probability `p`, in place."""
    drop = torch.rand(batch["text_states"].shape[0], generator=generator, device=generator.device) < p
    for key in keys:
        value = batch[key]
        keep = drop.to(value.device).reshape(-1, *([1] * (value.ndim - 1)))
        batch[key] = torch.where(keep, empty[key].to(value.device, value.dtype), value)


# Training ---------------------------------------------------------------------------------------------------------


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Run (or with `resume`, continue) training; return the saved pipeline folder."""
    check_config(config)
    output = Path(config.output)
    checkpoints = checkpoint_dirs(output)
    latest = checkpoints[-1] if checkpoints else None
    if latest is not None and not resume:
        raise ValueError(f"output={output} already holds checkpoints; pass --resume or choose another output")
    if resume and latest is None:
        logger.warning("no checkpoint in %s: starting from the beginning", output)
    if latest is not None and checkpoint_step(latest) > config.steps:
        # Resuming would export the later weights as if they were trained for `steps`.
        raise ValueError(
            f"the latest checkpoint, {latest}, is past steps={config.steps}: raise steps, or train into another output"
        )

    # Accelerate keeps one mixed precision per process, but a recipe trains its stages in one process, each in its own
    # precision: the last stage's goes (the process group, in PartialState, stays).
    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != config.mixed_precision:
        AcceleratorState._reset_state()
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    device, rank, world = accelerator.device, accelerator.process_index, accelerator.num_processes
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        (output / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))

    # Data: the cache knows which pipeline made it, whose VAE and text encoder the result will ship with.
    dataset = CachedDataset(config.cache, subset=config.pairs, subset_seed=config.seed)
    empty = dataset.empty_prompt()
    if not dataset.paired and config.change_weight != 1:
        raise ValueError(
            f"change_weight={config.change_weight!r} weighs where a target differs from its source, but "
            f"{config.cache} holds captioned clips (no sources): set change_weight=1"
        )
    pipeline_dir = pipeline_folder_of(config.pipeline or dataset.settings.get("model"))

    # Model
    model = restore_or_build(config, latest)
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    model.train()
    guidance = None
    if model.config.guidance_embeds:
        if config.guidance is None:
            raise ValueError("guidance=None, but this model embeds a guidance value; set guidance (e.g. 1.0)")
        guidance = float(config.guidance) * 1000.0
    parameters = [p for p in model.parameters() if p.requires_grad]
    ema = EMA(model, config.ema_decay).to(device) if config.ema_decay is not None else None

    # Optimizer and schedule (stepped once per optimizer step, whatever the number of processes)
    optimizer = build_optimizer(config, parameters, device)
    factor = partial(
        lr_factor, steps=config.steps, warmup_steps=config.warmup_steps, decay_steps=config.decay_steps,
        restarts=tuple(config.restarts),
    )  # fmt: skip
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    if config.compile:
        unwrapped.compile()
    # Noise, sigmas and instruction dropout come from this generator alone (one stream per process), so its state
    # pins them on resume.
    generator = torch.Generator(device).manual_seed(config.seed + rank)

    start = 0
    if latest is not None:
        start = load_training_state(latest, accelerator, optimizer, scheduler, generator, ema)
        logger.info("resumed from %s at step %d", latest, start)
    position = start * config.gradient_accumulation  # global batches drawn so far
    batches = EpochBatches(len(dataset), config.batch_size, config.seed, position, rank, world)
    # A seeded DataLoader generator keeps the loader from drawing on the global RNG.
    loader = iter(DataLoader(dataset, batch_sampler=batches, generator=torch.Generator().manual_seed(config.seed)))

    # Validation edits, made by the main process with the pipeline's VAE and text encoder around the model.
    validation = None
    if config.validation.enabled and accelerator.is_main_process:
        base = VideoEditPipeline.from_pretrained(pipeline_dir)
        validation_pipe = VideoEditPipeline(
            transformer=unwrapped, vae=base.vae, scheduler=base.scheduler, text_encoder=base.text_encoder,
            defaults=base.defaults.to_dict(),
        )  # fmt: skip
        validation_pipe.set_progress_bar_config(disable=True)
        validation = (validation_pipe, load_validation_set(config.validation, dataset.settings))

    def sample_edits(step: int) -> None:
        if validation is None:
            return
        pipe, samples = validation
        # The VAE and text encoder visit the device only while sampling, leaving its memory to training.
        pipe.vae.to(device)
        pipe.text_encoder.to(device)
        model.eval()
        with ema.applied(unwrapped) if ema is not None else nullcontext():
            folder = output / SAMPLES_DIR / f"step-{step:06d}"
            write_samples(pipe, samples, config.validation, folder, fps=dataset.settings["fps"])
        model.train()
        pipe.vae.to("cpu")
        pipe.text_encoder.to("cpu")

    run_log = None
    if accelerator.is_main_process:
        run_log = RunLog(output, resume_step=start, tensorboard=config.tensorboard)
    logger.info(
        "training %d steps from step %d on %d samples, %d process(es) on %s", config.steps, start, len(dataset),
        world, device,
    )  # fmt: skip
    window_loss, window_samples, window_start = 0.0, 0, time.perf_counter()
    for step in range(start + 1, config.steps + 1):
        step_loss, grad_norm = 0.0, None
        for micro in range(config.gradient_accumulation):
            batch = next(loader)
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            if config.instruction_dropout > 0:
                drop_instructions(batch, empty, config.instruction_dropout, generator)
            if config.pooled_dropout > 0:
                drop_instructions(batch, empty, config.pooled_dropout, generator, keys=("text_pooled",))
            target = batch["target_latents"]
            b = target.shape[0]
            sigma = flow_matching.sample_timesteps(
                b, generator, logit_mean=config.logit_mean, logit_std=config.logit_std, shift=config.shift
            )
            noise = torch.randn(target.shape, generator=generator, device=device, dtype=target.dtype)
            last = micro == config.gradient_accumulation - 1
            # Gradients are all-reduced across processes only on the last micro-batch of a step.
            with accelerator.no_sync(model) if not last else nullcontext(), accelerator.autocast():
                pred = model(
                    hidden_states=flow_matching.noisy(target, noise, sigma),
                    timestep=sigma * 1000.0,
                    encoder_hidden_states=batch["text_states"],
                    encoder_attention_mask=batch["text_mask"],
                    pooled_projections=batch["text_pooled"],
                    guidance=torch.full((b,), guidance, device=device) if guidance is not None else None,
                    source_latents=batch.get("source_latents"),  # none for captioned clips: text-to-video
                    return_dict=False,
                )[0]
                weights = None
                if config.change_weight != 1:
                    weights = flow_matching.change_weights(batch["source_latents"], target, config.change_weight)
                loss = flow_matching.loss(pred, flow_matching.velocity_target(target, noise), weights)
                mean_loss = accelerator.gather(loss.detach()).mean().item()  # every process sees every loss
                if not math.isfinite(mean_loss):
                    raise RuntimeError(f"non-finite loss {mean_loss} at step {step}; lower lr or check the data")
                accelerator.backward(loss / config.gradient_accumulation)
            step_loss += mean_loss / config.gradient_accumulation
            window_samples += b * world

        if config.grad_clip is not None:
            grad_norm = float(accelerator.clip_grad_norm_(parameters, config.grad_clip))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(unwrapped)

        window_loss += step_loss
        if run_log is not None and (step % config.log_every == 0 or step == config.steps):
            elapsed = time.perf_counter() - window_start
            steps_in_window = step - max(start, (step - 1) // config.log_every * config.log_every)
            record = {
                "step": step,
                "loss": window_loss / steps_in_window,
                "lr": scheduler.get_last_lr()[0],
                "grad_norm": grad_norm,
                "samples_per_s": window_samples / elapsed if elapsed > 0 else math.nan,
            }
            run_log.write(record)
            logger.info("step %d loss %.4f lr %.2e", step, record["loss"], record["lr"])
        if step % config.log_every == 0 or step == config.steps:
            window_loss, window_samples, window_start = 0.0, 0, time.perf_counter()
        if step % config.checkpoint_every == 0:
            path = save_checkpoint(
                accelerator, output, step, unwrapped, lora=config.lora.enabled, optimizer=optimizer,
                scheduler=scheduler, generator=generator, ema=ema, keep_last=config.keep_last,
            )  # fmt: skip
            logger.info("checkpoint %s", path)
        if step % config.validation.every == 0 and step != config.steps:
            sample_edits(step)

    # The result: EMA weights when averaging, adapters merged into plain weights, in a pipeline folder.
    sample_edits(config.steps)
    final = output / "pipeline"
    if accelerator.is_main_process:
        run_log.close()
        plot_loss_curve(output)
        if ema is not None:
            ema.copy_to(unwrapped)
        if config.lora.enabled:
            save_adapter(unwrapped, output / "lora", config.lora)
            merge_lora(unwrapped)
        save_pipeline(unwrapped, pipeline_dir, final)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final


# Command line -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, help="YAML config (TrainConfig fields)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in output")
    parser.add_argument("overrides", nargs="*", help="name=value settings, e.g. cache=data/cache lora.rank=16")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(TrainConfig, args.config, args.overrides)
        final = train(config, resume=args.resume)
    except (ValueError, FileNotFoundError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    except RuntimeError as error:
        sys.stderr.write(f"training failed: {error}\n")
        return 1
    sys.stdout.write(f"trained pipeline -> {final}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
