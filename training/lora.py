"""LoRA adapters on the transformer blocks, and merging them back into plain weights.

Targets are a regular expression matched against whole module names, restricted to `transformer_blocks.N` and
`single_transformer_blocks.N`: plain leaf names such as `to_q` or `proj_out` would also hit the text refiner inside
`context_embedder` and the model's final `proj_out`, which fine-tuning should leave alone.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import save_file
from torch import nn

logger = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"

# Attention projections and MLPs of the double- and single-stream blocks; not the AdaLN modulation linears.
DEFAULT_TARGETS = (
    r"(single_)?transformer_blocks\.\d+\."
    r"(attn\.(to_q|to_k|to_v|to_out\.0|add_q_proj|add_k_proj|add_v_proj|to_add_out)"
    r"|ff(_context)?\.net\.(0\.proj|2)|proj_mlp|proj_out)"
)
BLOCK_PREFIX = re.compile(r"(single_)?transformer_blocks\.\d+\.")


@dataclass
class LoraSettings:
    """rank 0 means full fine-tuning (no adapter)."""

    rank: int = 0
    alpha: float | None = None  # scale is alpha / rank; None means alpha = rank (scale 1)
    dropout: float = 0.0
    targets: str = DEFAULT_TARGETS  # regex, matched against whole module names

    def check(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 0:
            raise ValueError(f"lora.rank={self.rank!r} must be a non-negative integer (0 = full fine-tuning)")
        if self.alpha is not None and not (isinstance(self.alpha, int | float) and self.alpha > 0):
            raise ValueError(f"lora.alpha={self.alpha!r} must be positive or null")
        if not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise ValueError(f"lora.dropout={self.dropout!r} must be in [0, 1)")
        try:
            re.compile(self.targets)
        except (re.error, TypeError) as error:
            raise ValueError(f"lora.targets={self.targets!r} is not a regular expression: {error}") from error

    @property
    def enabled(self) -> bool:
        return self.rank > 0


def target_modules(model: nn.Module, targets: str) -> list[str]:
    """The linear layers `targets` selects; an error if it selects none or anything outside the blocks."""
    pattern = re.compile(targets)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and pattern.fullmatch(n)]
    if not names:
        raise ValueError(f"lora.targets={targets!r} matches no linear layer of the transformer")
    outside = [n for n in names if not BLOCK_PREFIX.match(n)]
    if outside:
        raise ValueError(f"lora.targets={targets!r} also matches layers outside the transformer blocks: {outside[:3]}")
    return names


def add_lora(model: nn.Module, settings: LoraSettings) -> int:
    """Freeze `model` and add trainable LoRA adapters; return the number of adapted layers."""
    names = target_modules(model, settings.targets)
    model.requires_grad_(False)
    config = PeftLoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha if settings.alpha is not None else settings.rank,
        lora_dropout=settings.dropout,
        target_modules=settings.targets,
        init_lora_weights=True,  # B = 0: the adapted model starts exactly where the base model is
    )
    model.add_adapter(config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("LoRA rank %d on %d layers: %.2fM trainable parameters", settings.rank, len(names), trainable / 1e6)
    return len(names)


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights alone, in peft's naming."""
    return {k: v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(model).items()}


def load_lora_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    result = set_peft_model_state_dict(model, state)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise ValueError(f"adapter weights do not fit this model: unexpected {unexpected[:3]}")


def save_adapter(model: nn.Module, folder: Path, settings: LoraSettings) -> Path:
    """Write the adapter on its own (peft layout) for users who keep the base model and swap adapters."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(lora_state_dict(model), str(folder / ADAPTER_WEIGHTS))
    config = {
        "peft_type": "LORA",
        "r": settings.rank,
        "lora_alpha": settings.alpha if settings.alpha is not None else settings.rank,
        "lora_dropout": settings.dropout,
        "target_modules": settings.targets,
    }
    (folder / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return folder


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base layer's weight and put the plain layer back: a model with the original
    parameter names that loads without peft."""
    replaced = 0
    for name, module in list(model.named_modules()):
        if not isinstance(module, BaseTunerLayer):
            continue
        module.merge()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, module.get_base_layer())
        replaced += 1
    # Without its adapters the model must no longer claim to have a peft config.
    if hasattr(model, "peft_config"):
        del model.peft_config
    model._hf_peft_config_loaded = False
    logger.info("merged %d LoRA layers", replaced)
    return model
