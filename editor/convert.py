"""Original HunyuanVideo / ICVE DiT checkpoints to diffusers' parameter names.

The released ICVE transformer is one safetensors state dict in HunyuanVideo's original layout (fused qkv
projections, `linear1`/`linear2` single blocks, a final layer whose modulation yields (shift, scale)) next to the
constructor arguments of the original class. This module maps both to `ICVETransformer3DModel`.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from .transformer import ICVETransformer3DModel

logger = logging.getLogger(__name__)

# Exact renames, applied to the key's suffix after any block prefix has been translated.
_RENAMES: dict[str, str] = {
    # embedders
    "img_in.proj": "x_embedder.proj",
    "time_in.mlp.0": "time_text_embed.timestep_embedder.linear_1",
    "time_in.mlp.2": "time_text_embed.timestep_embedder.linear_2",
    "guidance_in.mlp.0": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in.mlp.2": "time_text_embed.guidance_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    # text token refiner
    "txt_in.input_embedder": "context_embedder.proj_in",
    "txt_in.t_embedder.mlp.0": "context_embedder.time_text_embed.timestep_embedder.linear_1",
    "txt_in.t_embedder.mlp.2": "context_embedder.time_text_embed.timestep_embedder.linear_2",
    "txt_in.c_embedder.linear_1": "context_embedder.time_text_embed.text_embedder.linear_1",
    "txt_in.c_embedder.linear_2": "context_embedder.time_text_embed.text_embedder.linear_2",
    "final_layer.linear": "proj_out",
}

_REFINER_BLOCK = {
    "norm1": "norm1",
    "norm2": "norm2",
    "self_attn_proj": "attn.to_out.0",
    "mlp.fc1": "ff.net.0.proj",
    "mlp.fc2": "ff.net.2",
    "adaLN_modulation.1": "norm_out.linear",
}

_DOUBLE_BLOCK = {
    "img_mod.linear": "norm1.linear",
    "txt_mod.linear": "norm1_context.linear",
    "img_attn_q_norm": "attn.norm_q",
    "img_attn_k_norm": "attn.norm_k",
    "txt_attn_q_norm": "attn.norm_added_q",
    "txt_attn_k_norm": "attn.norm_added_k",
    "img_attn_proj": "attn.to_out.0",
    "txt_attn_proj": "attn.to_add_out",
    "img_mlp.fc1": "ff.net.0.proj",
    "img_mlp.fc2": "ff.net.2",
    "txt_mlp.fc1": "ff_context.net.0.proj",
    "txt_mlp.fc2": "ff_context.net.2",
}

_SINGLE_BLOCK = {
    "modulation.linear": "norm.linear",
    "q_norm": "attn.norm_q",
    "k_norm": "attn.norm_k",
    "linear2": "proj_out",
}

# Fused projections: original name -> the diffusers names its rows split into, in order.
_DOUBLE_FUSED = {
    "img_attn_qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "txt_attn_qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
}
_REFINER_FUSED = {"self_attn_qkv": ("attn.to_q", "attn.to_k", "attn.to_v")}


def config_from_original(original: dict) -> dict:
    """Map the original class's constructor arguments to `ICVETransformer3DModel`'s."""
    hidden, heads = int(original["hidden_size"]), int(original["heads_num"])
    if hidden % heads:
        raise ValueError(f"hidden_size={hidden} is not divisible by heads_num={heads}")
    patch = original.get("patch_size", [1, 2, 2])
    patch_t, patch_h, patch_w = (1, patch, patch) if isinstance(patch, int) else patch
    if patch_h != patch_w:
        raise ValueError(f"patch_size={patch} has a non-square spatial patch, which diffusers does not support")
    return {
        "in_channels": int(original.get("in_channels", 16)),
        "out_channels": int(original.get("out_channels") or original.get("in_channels", 16)),
        "num_attention_heads": heads,
        "attention_head_dim": hidden // heads,
        "num_layers": int(original.get("mm_double_blocks_depth", 20)),
        "num_single_layers": int(original.get("mm_single_blocks_depth", 40)),
        "num_refiner_layers": int(original.get("num_refiner_layers", 2)),
        "mlp_ratio": float(original.get("mlp_width_ratio", 4.0)),
        "patch_size": int(patch_h),
        "patch_size_t": int(patch_t),
        "qk_norm": "rms_norm" if original.get("qk_norm", True) else None,
        "guidance_embeds": bool(original.get("guidance_embed", True)),
        "text_embed_dim": int(original.get("text_states_dim", 4096)),
        "pooled_projection_dim": int(original.get("text_states_dim_2", 768)),
        "rope_theta": float(original.get("rope_theta", 256.0)),
        "rope_axes_dim": tuple(int(d) for d in original.get("rope_dim_list", (16, 56, 56))),
    }


def _split_rows(tensor: torch.Tensor, sizes: list[int], key: str) -> list[torch.Tensor]:
    if tensor.shape[0] != sum(sizes):
        raise ValueError(f"{key} has {tensor.shape[0]} rows, expected {sum(sizes)} ({' + '.join(map(str, sizes))})")
    return list(torch.split(tensor, sizes, dim=0))


def convert_state_dict(original: dict[str, torch.Tensor], hidden_size: int) -> dict[str, torch.Tensor]:
    """Rename and split an original-format DiT state dict into diffusers' layout.

    `hidden_size` sizes the split of the single blocks' fused `linear1` (q, k, v, mlp); it must come from the
    checkpoint's config, not be assumed.
    """
    converted: dict[str, torch.Tensor] = {}
    unknown: list[str] = []

    def put(name: str, tensor: torch.Tensor) -> None:
        if name in converted:
            raise ValueError(f"two original keys map to {name}")
        converted[name] = tensor

    block_rules: list[tuple[re.Pattern, str, dict[str, str], dict[str, tuple[str, ...]]]] = [
        (re.compile(r"double_blocks\.(\d+)\.(.+)"), "transformer_blocks.{}.", _DOUBLE_BLOCK, _DOUBLE_FUSED),
        (re.compile(r"single_blocks\.(\d+)\.(.+)"), "single_transformer_blocks.{}.", _SINGLE_BLOCK, {}),
        (
            re.compile(r"txt_in\.individual_token_refiner\.blocks\.(\d+)\.(.+)"),
            "context_embedder.token_refiner.refiner_blocks.{}.",
            _REFINER_BLOCK,
            _REFINER_FUSED,
        ),
    ]

    for key, tensor in original.items():
        base, _, param = key.rpartition(".")
        if key.startswith("final_layer.adaLN_modulation.1."):
            # The original chunks this output as (shift, scale); diffusers' AdaLayerNormContinuous as (scale, shift).
            shift, scale = tensor.chunk(2, dim=0)
            put(f"norm_out.linear.{param}", torch.cat([scale, shift], dim=0))
            continue
        if base in _RENAMES:
            put(f"{_RENAMES[base]}.{param}", tensor)
            continue
        for pattern, prefix, renames, fused in block_rules:
            match = pattern.fullmatch(base)
            if match is None:
                continue
            index, name = match.groups()
            prefix = prefix.format(index)
            if name in renames:
                put(f"{prefix}{renames[name]}.{param}", tensor)
            elif name in fused:
                size = tensor.shape[0] // 3
                for target, part in zip(fused[name], _split_rows(tensor, [size] * 3, key), strict=True):
                    put(f"{prefix}{target}.{param}", part)
            elif prefix.startswith("single") and name == "linear1":
                mlp = tensor.shape[0] - 3 * hidden_size
                parts = _split_rows(tensor, [hidden_size] * 3 + [mlp], key)
                for target, part in zip(("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), parts, strict=True):
                    put(f"{prefix}{target}.{param}", part)
            else:
                unknown.append(key)
            break
        else:
            unknown.append(key)

    if unknown:
        raise ValueError(f"{len(unknown)} original keys have no diffusers counterpart: {sorted(unknown)[:20]}")
    return converted


def load_original_transformer(
    weights: str | Path,
    config: str | Path | dict,
    *,
    torch_dtype: torch.dtype = torch.float32,
    source_rope: str = "shared",
) -> ICVETransformer3DModel:
    """Build an `ICVETransformer3DModel` from an original-format safetensors state dict and its config.

    Loading is strict: a missing or unexpected key is an error that lists them.
    """
    weights = Path(weights)
    if weights.suffix != ".safetensors":
        raise ValueError(f"{weights} is not a .safetensors file; only safetensors checkpoints are read")
    if not weights.is_file():
        raise FileNotFoundError(f"transformer weights not found: {weights}")
    original_config = config if isinstance(config, dict) else json.loads(Path(config).read_text())
    model_config = config_from_original(original_config)
    model_config["source_rope"] = source_rope

    state_dict = convert_state_dict(load_file(weights), hidden_size=int(original_config["hidden_size"]))
    model = ICVETransformer3DModel(**model_config)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state_dict)), sorted(set(state_dict) - expected)
    if missing or unexpected:
        raise ValueError(f"checkpoint {weights} does not fit the model: missing {missing}, unexpected {unexpected}")
    model.load_state_dict(state_dict, strict=True)
    logger.info("loaded original-format transformer %s (%d tensors)", weights, len(state_dict))
    return model if torch_dtype == torch.float32 else model.to(torch_dtype)
