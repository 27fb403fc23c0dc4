"""Original HunyuanVideo / ICVE DiT checkpoints to diffusers' parameter names.

The released ICVE transformer is one safetensors state dict in HunyuanVideo's original layout (fused qkv
projections, `linear1`/`linear2` single blocks, a final layer whose modulation yields (shift, scale)) next to the
constructor arguments of the original class. This module maps both to `ICVETransformer3DModel`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

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


_BLOCK_RULES: tuple[tuple[re.Pattern, str, dict[str, str], dict[str, tuple[str, ...]]], ...] = (
    (re.compile(r"double_blocks\.(\d+)\.(.+)"), "transformer_blocks.{}.", _DOUBLE_BLOCK, _DOUBLE_FUSED),
    (re.compile(r"single_blocks\.(\d+)\.(.+)"), "single_transformer_blocks.{}.", _SINGLE_BLOCK, {}),
    (
        re.compile(r"txt_in\.individual_token_refiner\.blocks\.(\d+)\.(.+)"),
        "context_embedder.token_refiner.refiner_blocks.{}.",
        _REFINER_BLOCK,
        _REFINER_FUSED,
    ),
)


def convert_tensor(key: str, tensor: torch.Tensor, hidden_size: int) -> list[tuple[str, torch.Tensor]]:
    """The diffusers (name, tensor) pairs of one original tensor; an empty list when the key is unknown.

    `hidden_size` sizes the split of the single blocks' fused `linear1` (q, k, v, mlp); it must come from the
    checkpoint's config, not be assumed.
    """
    base, _, param = key.rpartition(".")
    if base == "final_layer.adaLN_modulation.1":
        # The original chunks this output as (shift, scale); diffusers' AdaLayerNormContinuous as (scale, shift).
        shift, scale = tensor.chunk(2, dim=0)
        return [(f"norm_out.linear.{param}", torch.cat([scale, shift], dim=0))]
    if base in _RENAMES:
        return [(f"{_RENAMES[base]}.{param}", tensor)]
    for pattern, prefix, renames, fused in _BLOCK_RULES:
        match = pattern.fullmatch(base)
        if match is None:
            continue
        index, name = match.groups()
        prefix = prefix.format(index)
        if name in renames:
            return [(f"{prefix}{renames[name]}.{param}", tensor)]
        if name in fused:
            parts = _split_rows(tensor, [tensor.shape[0] // 3] * 3, key)
            return [(f"{prefix}{target}.{param}", part) for target, part in zip(fused[name], parts, strict=True)]
        if prefix.startswith("single") and name == "linear1":
            parts = _split_rows(tensor, [hidden_size] * 3 + [tensor.shape[0] - 3 * hidden_size], key)
            targets = ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")
            return [(f"{prefix}{target}.{param}", part) for target, part in zip(targets, parts, strict=True)]
        return []
    return []


def convert_state_dict(original: dict[str, torch.Tensor], hidden_size: int) -> dict[str, torch.Tensor]:
    """Rename and split a whole original-format DiT state dict into diffusers' layout."""
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in original.items():
        pairs = convert_tensor(key, tensor, hidden_size)
        if not pairs:
            unknown.append(key)
        for name, value in pairs:
            if name in converted:
                raise ValueError(f"two original keys map to {name}")
            converted[name] = value
    if unknown:
        raise ValueError(f"{len(unknown)} original keys have no diffusers counterpart: {sorted(unknown)[:20]}")
    return converted


def _read_config(config: str | Path | dict) -> dict:
    if isinstance(config, dict):
        return config
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"transformer config not found: {path}")
    return json.loads(path.read_text())


def _check_weights_file(weights: Path) -> None:
    if weights.suffix != ".safetensors":
        raise ValueError(f"{weights} is not a .safetensors file; only safetensors checkpoints are read")
    if not weights.is_file():
        raise FileNotFoundError(f"transformer weights not found: {weights}")


def _check_keys(names: set[str], model_config: dict, weights: Path) -> None:
    """Strict loading: the converted names must be exactly the model's parameters."""
    with torch.device("meta"):
        expected = set(ICVETransformer3DModel(**model_config).state_dict())
    missing, unexpected = sorted(expected - names), sorted(names - expected)
    if missing or unexpected:
        raise ValueError(f"checkpoint {weights} does not fit the model: missing {missing}, unexpected {unexpected}")


def load_original_transformer(
    weights: str | Path,
    config: str | Path | dict,
    *,
    torch_dtype: torch.dtype = torch.float32,
    source_rope: str = "shared",
) -> ICVETransformer3DModel:
    """Build an `ICVETransformer3DModel` in memory from an original-format state dict and its config.

    Loading is strict: a missing or unexpected key is an error that lists them. For full-size checkpoints prefer
    `convert_checkpoint` (streams to disk) and `ICVETransformer3DModel.from_pretrained`.
    """
    weights = Path(weights)
    _check_weights_file(weights)
    original_config = _read_config(config)
    model_config = dict(config_from_original(original_config), source_rope=source_rope)
    state_dict = convert_state_dict(load_file(weights), hidden_size=int(original_config["hidden_size"]))
    _check_keys(set(state_dict), model_config, weights)
    model = ICVETransformer3DModel(**model_config)
    model.load_state_dict(state_dict, strict=True)
    logger.info("loaded original-format transformer %s (%d tensors)", weights, len(state_dict))
    return model if torch_dtype == torch.float32 else model.to(torch_dtype)


def convert_checkpoint(
    weights: str | Path,
    config: str | Path | dict,
    output_dir: str | Path,
    *,
    max_shard_bytes: int = 5 * 1024**3,
    source_rope: str = "shared",
) -> Path:
    """Convert an original-format checkpoint into a diffusers model directory, one tensor at a time.

    Tensors keep their stored dtype; memory stays around one shard. The directory appears atomically: it is written
    under a temporary name beside `output_dir` and renamed into place, so an interrupted conversion leaves nothing
    that looks finished.
    """
    weights, output_dir = Path(weights), Path(output_dir)
    _check_weights_file(weights)
    original_config = _read_config(config)
    model_config = dict(config_from_original(original_config), source_rope=source_rope)
    hidden_size = int(original_config["hidden_size"])

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}-", dir=output_dir.parent))
    try:
        names = _write_shards(weights, hidden_size, staging, max_shard_bytes)
        _check_keys(names, model_config, weights)
        with torch.device("meta"):
            ICVETransformer3DModel(**model_config).save_config(staging)
        (staging / "conversion.json").write_text(json.dumps(_source_stamp(weights), indent=2))
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("converted %s -> %s (%d tensors)", weights, output_dir, len(names))
    return output_dir


def _write_shards(weights: Path, hidden_size: int, directory: Path, max_shard_bytes: int) -> set[str]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    sizes = [0]
    files: list[str] = []
    unknown: list[str] = []

    def flush() -> None:
        index = len(files)
        name = f"diffusion_pytorch_model-{index + 1:05d}.safetensors"
        save_file(shards[-1], directory / name, metadata={"format": "pt"})
        files.append(name)

    weight_map: dict[str, int] = {}
    with safe_open(weights, framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
            pairs = convert_tensor(key, f.get_tensor(key), hidden_size)
            if not pairs:
                unknown.append(key)
            for name, tensor in pairs:
                if name in weight_map:
                    raise ValueError(f"two original keys map to {name}")
                size = tensor.numel() * tensor.element_size()
                if shards[-1] and sizes[-1] + size > max_shard_bytes:
                    flush()
                    shards.append({})
                    sizes.append(0)
                shards[-1][name] = tensor.contiguous()
                sizes[-1] += size
                weight_map[name] = len(files)
    if unknown:
        raise ValueError(f"{len(unknown)} original keys have no diffusers counterpart: {sorted(unknown)[:20]}")
    flush()

    # Shard names carry the total once it is known: rename to diffusers' "-of-N" pattern and write the index.
    total = len(files)
    final = [name.replace(".safetensors", f"-of-{total:05d}.safetensors") for name in files]
    for old, new in zip(files, final, strict=True):
        (directory / old).rename(directory / new)
    index = {
        "metadata": {"total_size": sum(sizes)},
        "weight_map": {name: final[shard] for name, shard in sorted(weight_map.items())},
    }
    (directory / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return set(weight_map)


def _source_stamp(weights: Path) -> dict:
    stat = weights.stat()
    return {"source": weights.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _is_diffusers_dir(path: Path) -> bool:
    if not (path / "config.json").is_file():
        return False
    return "_class_name" in json.loads((path / "config.json").read_text())


def _single_safetensors(directory: Path) -> Path:
    files = sorted(directory.glob("*.safetensors"))
    if len(files) != 1:
        found = [f.name for f in files] or "none"
        raise FileNotFoundError(
            f"{directory} should hold exactly one original-format .safetensors file, found {found}"
        )
    return files[0]


def converted_cache_dir(weights: Path) -> Path:
    """Where the diffusers copy of an original checkpoint is kept: beside it, or in the user cache if read-only."""
    beside = weights.parent / f"{weights.stem}-diffusers"
    if os.access(weights.parent, os.W_OK):
        return beside
    digest = hashlib.sha256(str(weights.resolve()).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "icve-studio" / "converted"
    return cache / f"{weights.stem}-{digest}"


def load_transformer(path: str | Path, *, torch_dtype: torch.dtype = torch.float32) -> ICVETransformer3DModel:
    """Load a transformer from a diffusers directory, or from an original-format checkpoint (file or directory).

    An original checkpoint is converted once and the diffusers copy cached (see `converted_cache_dir`); later loads
    read the copy, unless the checkpoint changed since.
    """
    path = Path(path)
    if path.is_dir() and _is_diffusers_dir(path):
        return ICVETransformer3DModel.from_pretrained(path, dtype=torch_dtype)
    weights = path if path.is_file() else _single_safetensors(path) if path.is_dir() else path
    _check_weights_file(weights)
    config = weights.parent / "config.json"
    cache = converted_cache_dir(weights)
    stamp = cache / "conversion.json"
    if not stamp.is_file() or json.loads(stamp.read_text()) != _source_stamp(weights):
        logger.info("converting %s to diffusers' layout (once) into %s", weights, cache)
        convert_checkpoint(weights, config, cache)
    return ICVETransformer3DModel.from_pretrained(cache, dtype=torch_dtype)
