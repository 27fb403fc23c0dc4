"""Weight quantization of the large parts: the transformer's blocks and the Llama text encoder's layers.

Which layers are quantized is a rule, not a side effect of name matching: only `nn.Linear` layers inside the
repeated blocks are. Everything else - patch and text embedders, the timestep/guidance embedders, the token refiner,
the output modulation and the small output projection, every norm - keeps its precision. (Name-substring skip lists
cannot express this: the top-level `proj_out` shares its name with the large `proj_out` of every single block.)

Backends:
* `bitsandbytes` (CUDA): int8 (LLM.int8 with outlier threshold 6.0) and 4-bit nf4 with bf16 compute.
* `torchao` (CPU and CUDA): int8 weight-only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

logger = logging.getLogger(__name__)

METHODS = ("none", "int8", "nf4")
BACKENDS = ("auto", "bitsandbytes", "torchao")

# Transformer layers under these prefixes are the repeated blocks: ~99% of the weights of HunyuanVideo's DiT.
TRANSFORMER_BLOCK_PREFIXES = ("transformer_blocks.", "single_transformer_blocks.")
# The Llama decoder layers of the text encoder; its embeddings and final norm stay as they are.
TEXT_MODEL_BLOCK_PREFIXES = ("layers.",)


@dataclass(frozen=True)
class Quantization:
    """What to quantize with: `method` in METHODS, `backend` in BACKENDS (auto: bitsandbytes on CUDA, else torchao)."""

    method: str = "none"
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"quantization method {self.method!r} is not one of {METHODS}")
        if self.backend not in BACKENDS:
            raise ValueError(f"quantization backend {self.backend!r} is not one of {BACKENDS}")

    def resolve(self, device: torch.device | str) -> str:
        """The backend to use on `device`; a clear error when the combination cannot run there."""
        cuda = torch.device(device).type == "cuda"
        if self.method == "none":
            return "none"
        backend = self.backend
        if backend == "auto":
            backend = "bitsandbytes" if cuda or self.method == "nf4" else "torchao"
        if backend == "bitsandbytes" and not cuda:
            raise ValueError(
                f"{self.method} quantization through bitsandbytes needs a CUDA GPU, and the device is {device}; "
                "on a CPU use int8 with the torchao backend"
            )
        if backend == "torchao" and self.method != "int8":
            raise ValueError(f"the torchao backend does int8 weight-only quantization, not {self.method}")
        return backend


def linear_layers(model: nn.Module, prefixes: tuple[str, ...]) -> list[str]:
    """Names of the `nn.Linear` layers under `prefixes`: the layers the rule quantizes."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and name.startswith(prefixes)]


def quantize_linear_layers(
    model: nn.Module, quantization: Quantization, device: torch.device | str, prefixes: tuple[str, ...]
) -> list[str]:
    """Quantize the `nn.Linear` layers of `model` under `prefixes` in place; returns their names.

    bitsandbytes layers quantize their weights when they are moved to the device, so the model is moved there.
    """
    backend = quantization.resolve(device)
    if backend == "none":
        return []
    names = linear_layers(model, prefixes)
    if backend == "torchao":
        _torchao_int8(model, set(names))
    else:
        _bitsandbytes(model, names, quantization.method)
        model.to(device)
    logger.info(
        "quantized %d linear layers of %s to %s (%s)", len(names), type(model).__name__, quantization.method, backend
    )
    return names


def _torchao_int8(model: nn.Module, names: set[str]) -> None:
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    quantize_(model, Int8WeightOnlyConfig(), filter_fn=lambda module, name: name in names)


def _bitsandbytes(model: nn.Module, names: list[str], method: str) -> None:
    import bitsandbytes as bnb

    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        linear: nn.Linear = getattr(parent, child)
        weight = linear.weight.data
        if method == "int8":
            layer = bnb.nn.Linear8bitLt(
                linear.in_features, linear.out_features, bias=linear.bias is not None,
                has_fp16_weights=False, threshold=6.0,
            )  # fmt: skip
            layer.weight = bnb.nn.Int8Params(weight.to(torch.float16), requires_grad=False, has_fp16_weights=False)
        else:
            compute = weight.dtype if weight.dtype in (torch.bfloat16, torch.float16) else torch.bfloat16
            layer = bnb.nn.Linear4bit(
                linear.in_features, linear.out_features, bias=linear.bias is not None,
                compute_dtype=compute, quant_type="nf4",
            )  # fmt: skip
            layer.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
        if linear.bias is not None:
            layer.bias = nn.Parameter(linear.bias.data, requires_grad=False)
        setattr(parent, child, layer)


def _tensor_bytes(tensor: torch.Tensor) -> int:
    """Storage of a tensor, counting the inner tensors of quantized tensor subclasses (data, scales, ...)."""
    flatten: Callable | None = getattr(tensor, "__tensor_flatten__", None)
    if flatten is not None and type(tensor) not in (torch.Tensor, nn.Parameter):
        inner, _ = flatten()
        return sum(_tensor_bytes(getattr(tensor, n)) for n in inner)
    size = tensor.numel() * tensor.element_size()
    # bitsandbytes keeps the quantization scales beside the packed data.
    for attribute in ("SCB",):
        extra = getattr(tensor, attribute, None)
        if isinstance(extra, torch.Tensor):
            size += extra.numel() * extra.element_size()
    state = getattr(tensor, "quant_state", None)
    if state is not None:
        size += sum(t.numel() * t.element_size() for t in _state_tensors(state))
    return size


def _state_tensors(state) -> list[torch.Tensor]:
    tensors = [getattr(state, name, None) for name in ("absmax", "code")]
    nested = getattr(state, "state2", None)
    if nested is not None:
        tensors += _state_tensors(nested)
    return [t for t in tensors if isinstance(t, torch.Tensor)]


def weight_bytes(model: nn.Module) -> int:
    """Bytes of all parameters and buffers, quantized storage included."""
    return sum(_tensor_bytes(t) for t in [*model.parameters(), *model.buffers()])
