"""What the local backends (`kind: transformers`) share: the model's folder, the device and precision they run in.

Models load from a local folder only, from safetensors only, and never run code shipped with the weights.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .base import BackendConfig

logger = logging.getLogger(__name__)


def model_folder(config: BackendConfig, what: str) -> Path:
    """`config.model` as an existing folder, or a ValueError saying what was expected."""
    if not config.model:
        raise ValueError(f"the transformers {what} needs config.model, the folder of a saved model")
    folder = Path(config.model).expanduser()
    if not folder.is_dir():
        raise ValueError(f"the transformers {what} needs a local model folder; {folder} is not one")
    return folder


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(dtype: torch.dtype | None, device: torch.device) -> torch.dtype:
    """bf16 on a GPU that has it, fp32 otherwise (CPU half precision is slow and lossy)."""
    if dtype is not None:
        return dtype
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32
