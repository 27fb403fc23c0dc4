"""Training checkpoints: everything needed to continue a run bit for bit, in safetensors and JSON only.

`checkpoints/step-NNNNNN/` holds

| file | what |
|---|---|
| `transformer/` | the full weights (full fine-tuning), a diffusers model folder |
| `lora.safetensors` | the adapter weights alone (LoRA: the frozen base comes from `init` again) |
| `ema.safetensors` | the moving average of the trainable weights, when EMA is on |
| `optimizer.safetensors` | the optimizer's tensors; its other state is in `state.json` |
| `rng-R.safetensors` | process R's torch RNG and noise generator (each process draws its own noise) |
| `state.json` | step, optimizer scalars and param groups, LR schedule |

A checkpoint is written into a hidden temporary folder and renamed when complete, so a run killed while writing one
leaves the previous checkpoint as the latest; only the last `keep_last` are kept.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from torch import nn

from training.ema import EMA
from training.lora import lora_state_dict

CHECKPOINTS = "checkpoints"
PREFIX = "step-"
TRANSFORMER_DIR = "transformer"
LORA_FILE = "lora.safetensors"
EMA_FILE = "ema.safetensors"


def checkpoint_step(folder: Path) -> int:
    """The optimizer step a checkpoint folder was written at, from its name."""
    return int(Path(folder).name.removeprefix(PREFIX))


def checkpoint_dirs(output: Path) -> list[Path]:
    """Finished checkpoints, oldest first (temporary folders start with '.' and are never listed)."""
    root = Path(output) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)]
    return sorted(found, key=checkpoint_step)


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


def _rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    rng = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda{i}": state for i, state in enumerate(torch.cuda.get_rng_state_all())})
    return rng


def save_checkpoint(
    accelerator: Accelerator,
    output: Path,
    step: int,
    model: nn.Module,
    *,
    lora: bool,
    optimizer: torch.optim.Optimizer,
    scheduler,
    generator: torch.Generator,
    ema: EMA | None,
    keep_last: int,
) -> Path:
    """Write `checkpoints/step-NNNNNN` (all processes call this; `model` is the unwrapped model)."""
    root = Path(output) / CHECKPOINTS
    final = root / f"{PREFIX}{step:06d}"
    tmp = root / f".{final.name}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)  # left by a run killed mid-write
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    save_file(_rng_state(generator), str(tmp / f"rng-{accelerator.process_index}.safetensors"))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if lora:
            save_file(lora_state_dict(model), str(tmp / LORA_FILE))
        else:
            model.save_pretrained(tmp / TRANSFORMER_DIR, safe_serialization=True)
        if ema is not None:
            save_file(ema.state_dict(), str(tmp / EMA_FILE))
        tensors, optimizer_meta = _flatten_optimizer(optimizer.state_dict())
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        state = {"step": step, "optimizer": optimizer_meta, "scheduler": scheduler.state_dict()}
        (tmp / "state.json").write_text(json.dumps(state, indent=1) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in checkpoint_dirs(output)[:-keep_last]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_training_state(
    path: Path,
    accelerator: Accelerator,
    optimizer: torch.optim.Optimizer,
    scheduler,
    generator: torch.Generator,
    ema: EMA | None,
) -> int:
    """Restore optimizer, schedule, EMA and this process's RNG states; return the step. (Weights are loaded when
    the model is built: `transformer/` or `lora.safetensors`.)"""
    state = json.loads((path / "state.json").read_text())
    optimizer.load_state_dict(_unflatten_optimizer(load_file(str(path / "optimizer.safetensors")), state["optimizer"]))
    scheduler.load_state_dict(state["scheduler"])
    if ema is not None:
        if not (path / EMA_FILE).is_file():
            raise ValueError(f"{path} has no {EMA_FILE}: it was written without EMA; resume with ema_decay=null")
        ema.load_state_dict(load_file(str(path / EMA_FILE)))
    rng_file = path / f"rng-{accelerator.process_index}.safetensors"
    if not rng_file.is_file():
        raise ValueError(f"{path} has no {rng_file.name}: resume with the number of processes it was written with")
    rng = load_file(str(rng_file))
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["generator"])
    cuda = [rng[f"cuda{i}"] for i in range(torch.cuda.device_count()) if f"cuda{i}" in rng]
    if cuda:
        torch.cuda.set_rng_state_all(cuda)
    return int(state["step"])
