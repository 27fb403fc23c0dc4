"""The result of training as a pipeline folder the editor and the app load (`VideoEditPipeline.from_pretrained`).

The trained transformer replaces the transformer of the pipeline whose VAE and text encoder made the latent cache:
the other components, the scheduler and the editing defaults are copied from it unchanged, since the latents were
made with them.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from torch import nn

from training.atomic import atomic_write_dir

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

    atomic_write_dir(folder, write)
    logger.info("saved pipeline %s (components from %s)", folder, base)
    return folder
