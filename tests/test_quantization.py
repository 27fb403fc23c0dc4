"""Weight quantization: which layers, how much memory, how much error."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from editor.convert import load_original_transformer
from editor.quantization import (
    TRANSFORMER_BLOCK_PREFIXES,
    Quantization,
    _bitsandbytes,
    linear_layers,
    quantize_linear_layers,
    weight_bytes,
)


@pytest.fixture(scope="module")
def model_and_inputs(golden_dir):
    from safetensors.torch import load_file

    model = load_original_transformer(
        golden_dir / "original_weights.safetensors", golden_dir / "original_config.json"
    ).eval()
    io = load_file(golden_dir / "io.safetensors")
    inputs = dict(
        hidden_states=io["noisy_target_latents"], timestep=io["timestep"], encoder_hidden_states=io["text_states"],
        encoder_attention_mask=io["text_mask"], pooled_projections=io["text_states_2"], guidance=io["guidance"],
        source_latents=io["source_latents"],
    )  # fmt: skip
    return model, inputs


def relative_error(a: nn.Module, b: nn.Module, inputs: dict) -> float:
    with torch.no_grad():
        x, y = a(**inputs).sample, b(**inputs).sample
    return ((x - y).norm() / x.norm()).item()


def test_rule_quantizes_block_linears_only(model_and_inputs):
    model, _ = model_and_inputs
    names = linear_layers(model, TRANSFORMER_BLOCK_PREFIXES)
    assert "single_transformer_blocks.0.proj_out" in names  # the large linear2 of each single block
    assert "transformer_blocks.0.attn.to_q" in names and "transformer_blocks.1.ff_context.net.2" in names
    assert "proj_out" not in names and "norm_out.linear" not in names  # the small output layer and its modulation
    assert not any(n.startswith(("x_embedder", "context_embedder", "time_text_embed")) for n in names)


def test_torchao_int8_on_cpu_error_and_memory(model_and_inputs):
    """int8 weight-only, symmetric per output channel: each weight is off by at most half a step, max|w_row| / 254.

    For the near-Gaussian rows here that is an RMS error of about max/(254*sqrt(3)) ~ 0.8% of the row's RMS per
    layer, and errors of independent layers add in quadrature and partly cancel through the residual stream: the
    output is measured at ~1e-3. 1e-2 bounds that with margin while still failing for a wrong scale, a transposed
    weight or a skipped dequantization (those land at 1e-1 or more).
    """
    model, inputs = model_and_inputs
    quantized = copy.deepcopy(model)
    names = quantize_linear_layers(quantized, Quantization("int8", "torchao"), "cpu", TRANSFORMER_BLOCK_PREFIXES)
    assert len(names) == len(linear_layers(model, TRANSFORMER_BLOCK_PREFIXES))
    assert type(quantized.proj_out.weight) is nn.Parameter  # kept out by the rule
    assert type(quantized.single_transformer_blocks[0].proj_out.weight) is not nn.Parameter

    error = relative_error(model, quantized, inputs)
    ratio = weight_bytes(quantized) / weight_bytes(model)
    print(f"torchao int8: relative error {error:.2e}, weight bytes {ratio:.3f} of fp32")
    assert 1e-6 < error < 1e-2
    # Block linears go from 4 bytes to ~1 byte a weight; embedders and the refiner (a third here) stay fp32.
    block_share = sum(model.get_submodule(n).weight.numel() for n in names) / sum(
        p.numel() for p in model.parameters()
    )
    assert ratio == pytest.approx(1 - block_share * 0.75, abs=0.03)


# nf4 has 16 levels per block of 64 weights scaled by the block's absmax: ~10% RMS weight error per layer, ~5%
# measured at the output; int8 as in the torchao test.
@pytest.mark.parametrize(("method", "bound"), [("int8", 1e-2), ("nf4", 1.5e-1)])
def test_bitsandbytes_layers_replace_by_the_same_rule(model_and_inputs, method, bound):
    # bitsandbytes runs these layers on a CPU too; the public path still refuses without CUDA (tested elsewhere),
    # because its speed and memory only make sense there. This checks the replacement itself.
    model, inputs = model_and_inputs
    quantized = copy.deepcopy(model)
    names = linear_layers(quantized, TRANSFORMER_BLOCK_PREFIXES)
    _bitsandbytes(quantized, names, method)
    quantized.to("cpu")
    assert type(quantized.proj_out) is nn.Linear
    assert type(quantized.single_transformer_blocks[0].proj_out) is not nn.Linear
    error = relative_error(model, quantized, inputs)
    assert 1e-6 < error < bound
    assert weight_bytes(quantized) < weight_bytes(model) * (0.5 if method == "int8" else 0.45)


def test_quantization_choices_are_checked():
    with pytest.raises(ValueError, match="'int4'"):
        Quantization("int4")
    with pytest.raises(ValueError, match="'quanto'"):
        Quantization("int8", "quanto")
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        Quantization("int8", "bitsandbytes").resolve("cpu")
    with pytest.raises(ValueError, match="not nf4"):
        Quantization("nf4", "torchao").resolve("cpu")
    assert Quantization("int8").resolve("cpu") == "torchao"
    assert Quantization("int8").resolve("cuda") == "bitsandbytes"
