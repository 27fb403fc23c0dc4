"""An exponential moving average of the trainable weights, kept in float32 beside the model.

Averaged weights sample more smoothly than the last step's; they are what validation samples and the saved model
use when EMA is on. Only trainable parameters are averaged (with LoRA, the adapters alone), so the copy stays small.
The decay warms up as `min(decay, (1 + n) / (10 + n))` after n updates: a model trained from scratch would otherwise
carry its random initial weights in the average for thousands of steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

UPDATES_KEY = "__updates__"  # not a parameter name: module names never start with "_"


class EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        if not isinstance(decay, float) or not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay={decay!r} must be in (0, 1), e.g. 0.999")
        self.decay = decay
        self.updates = 0
        self.shadow = {n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}

    def _parameters(self, model: nn.Module) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
        for name, param in model.named_parameters():
            if name in self.shadow:
                yield name, self.shadow[name], param

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """shadow <- decay * shadow + (1 - decay) * weights, after an optimizer step (decay warmed up)."""
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for _, shadow, param in self._parameters(model):
            shadow.lerp_(param.detach().float(), 1.0 - decay)
        self.updates += 1

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """The model with the averaged weights inside the block; its own weights are restored afterwards."""
        backup = {}
        with torch.no_grad():
            for name, shadow, param in self._parameters(model):
                backup[name] = param.detach().clone()
                param.copy_(shadow)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, _, param in self._parameters(model):
                    param.copy_(backup[name])

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Put the averaged weights into `model` for good (at the end of training)."""
        for _, shadow, param in self._parameters(model):
            param.copy_(shadow)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {name: value.detach().contiguous().cpu() for name, value in self.shadow.items()}
        return {**state, UPDATES_KEY: torch.tensor(self.updates, dtype=torch.int64)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        self.updates = int(state.pop(UPDATES_KEY, torch.tensor(0)))
        missing, unexpected = set(self.shadow) - set(state), set(state) - set(self.shadow)
        if missing or unexpected:
            raise ValueError(
                f"EMA state does not fit the model: missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}"
            )
        for name, value in state.items():
            self.shadow[name] = value.to(self.shadow[name].device, torch.float32).clone()

    def to(self, device: torch.device) -> EMA:
        self.shadow = {name: value.to(device) for name, value in self.shadow.items()}
        return self
