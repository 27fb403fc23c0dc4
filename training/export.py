"""The result of training as a pipeline folder the editor and the app load (`VideoEditPipeline.from_pretrained`).

The trained transformer replaces the transformer of the pipeline whose VAE and text encoder made the latent cache:
the other components, the scheduler and the editing defaults are copied from it unchanged, since the latents were
made with them.

`python -m training.export RUN [--step N] [--output FOLDER]` makes such a folder from a run's checkpoint, the way
training ends: the EMA weights when the run averaged, LoRA adapters merged.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from torch import nn

from training.atomic import atomic_write, atomic_write_dir

logger = logging.getLogger(__name__)


def pipeline_folder_of(reference: str | Path | None) -> Path:
    """`reference` as a pipeline folder (one with `model_index.json`), or an error saying what is expected."""
    if reference is None:
        raise ValueError("pipeline=None: name the pipeline folder whose VAE and text encoder made the cache")
    folder = Path(reference)
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"pipeline={str(reference)!r} is not a pipeline folder (no model_index.json)")
    return folder


def save_pipeline(transformer: nn.Module, base: Path, folder: Path) -> Path:
    """Write `folder`: `base`'s components with `transformer` in place of its own, atomically (temporary folder,
    renamed when complete)."""
    base = Path(base).resolve()

    def skip_transformer(directory: str, names: list[str]) -> list[str]:
        return ["transformer"] if Path(directory).resolve() == base else []

    def write(tmp: Path) -> None:
        shutil.copytree(base, tmp, ignore=skip_transformer)
        transformer.save_pretrained(tmp / "transformer", safe_serialization=True)
        # diffusers records where the model was loaded from: for a resumed run, a checkpoint the saved weights have
        # long left behind, and a path on the training machine either way. It is not part of the model.
        config_file = tmp / "transformer" / "config.json"
        config = json.loads(config_file.read_text())
        config.pop("_name_or_path", None)
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    atomic_write_dir(folder, write)
    logger.info("saved pipeline %s (components from %s)", folder, base)
    return folder


def round_weights(folder: Path, precision: str) -> None:
    """Store the floating-point weights of the model in `folder` (its safetensors files) in `precision`.

    Loading them in that precision gives the same model as casting the full-precision weights at load time; in a
    higher one, the rounded weights.
    """
    import torch
    from safetensors.torch import load_file, save_file

    from editor.loading import PRECISIONS

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {sorted(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder} holds no safetensors weights")
    for file in files:
        weights = load_file(str(file))
        rounded = {k: v.to(dtype) if torch.is_floating_point(v) else v for k, v in weights.items()}
        atomic_write(file, lambda tmp, rounded=rounded: save_file(rounded, str(tmp), metadata={"format": "pt"}))


def export_checkpoint(run: Path, step: int | None = None, output: Path | None = None) -> Path:
    """A checkpoint of the training run in `run` (the latest, or `step`'s) as a pipeline folder, by default
    `run/pipeline-step-N`."""
    import torch
    from safetensors.torch import load_file

    from training.cache import CacheIndex
    from training.checkpoint import EMA_FILE, checkpoint_dirs, checkpoint_step
    from training.config import load_config
    from training.ema import EMA
    from training.lora import merge_lora
    from training.train import TrainConfig, restore_or_build

    run = Path(run)
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run} is not a training run's output folder (no config.yaml)")
    config = load_config(TrainConfig, run / "config.yaml", [])
    checkpoints = checkpoint_dirs(run)
    if step is None:
        if not checkpoints:
            raise ValueError(f"{run} holds no checkpoint")
        chosen = checkpoints[-1]
    else:
        chosen = next((c for c in checkpoints if checkpoint_step(c) == step), None)
        if chosen is None:
            raise ValueError(f"step={step} has no checkpoint in {run}; kept: {[c.name for c in checkpoints]}")
    model = restore_or_build(config, chosen)
    if (chosen / EMA_FILE).is_file():
        ema = EMA(model, decay=config.ema_decay or 0.0)
        ema.load_state_dict(load_file(str(chosen / EMA_FILE)))
        ema.copy_to(model)
    if config.lora.enabled:
        with torch.no_grad():
            merge_lora(model)
    base = pipeline_folder_of(config.pipeline or CacheIndex.load(config.cache).settings.get("model"))
    return save_pipeline(model, base, output or run / f"pipeline-{chosen.name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=export_checkpoint.__doc__)
    parser.add_argument("run", type=Path, help="a training run's output folder")
    parser.add_argument("--step", type=int, help="the checkpoint's step (default: the latest)")
    parser.add_argument("--output", type=Path, help="the pipeline folder to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        folder = export_checkpoint(args.run, args.step, args.output)
    except (ValueError, FileNotFoundError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    sys.stdout.write(f"pipeline -> {folder}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
