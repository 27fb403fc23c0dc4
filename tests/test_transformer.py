"""The in-context transformer: the official ICVE forward reproduced, and what each part of it does."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import HunyuanVideoTransformer3DModel
from safetensors.torch import load_file, save_file

from editor.convert import config_from_original, convert_state_dict, load_original_transformer
from editor.transformer import ICVETransformer3DModel


def relative_error(out: torch.Tensor, expected: torch.Tensor) -> float:
    return ((out - expected).norm() / expected.norm()).item()


@pytest.fixture(scope="module")
def golden(golden_dir):
    io = load_file(golden_dir / "io.safetensors")
    model = load_original_transformer(
        golden_dir / "original_weights.safetensors", golden_dir / "original_config.json"
    ).eval()
    return model, io


def run(model: ICVETransformer3DModel, io: dict, **changes) -> torch.Tensor:
    inputs = dict(
        hidden_states=io["noisy_target_latents"],
        timestep=io["timestep"],
        encoder_hidden_states=io["text_states"],
        encoder_attention_mask=io["text_mask"],
        pooled_projections=io["text_states_2"],
        guidance=io["guidance"],
        source_latents=io["source_latents"],
    )
    inputs.update(changes)
    with torch.no_grad():
        return model(**inputs).sample


def test_golden_fixture_matches_official_icve_forward(golden):
    model, io = golden
    assert relative_error(run(model, io), io["expected_output"]) < 1e-5


def test_text_padding_is_masked_and_matters(golden):
    model, io = golden
    assert not io["text_mask"].all(), "the fixture must contain text padding for this test to mean anything"
    unmasked = run(model, io, encoder_attention_mask=torch.ones_like(io["text_mask"]))
    assert relative_error(unmasked, io["expected_output"]) > 1e-3


def test_source_modulation_uses_timestep_zero(golden):
    model, io = golden
    # Feeding the source through the real-timestep modulation (a plain joint forward) must not match ICVE.
    zero_tokens = model.time_text_embed
    t0, _ = zero_tokens(torch.zeros_like(io["timestep"]), io["text_states_2"], io["guidance"])
    t, _ = zero_tokens(io["timestep"], io["text_states_2"], io["guidance"])
    assert (t0 - t).abs().max() > 1e-3
    out_same_t = run(model, io, timestep=torch.zeros_like(io["timestep"]))
    assert relative_error(out_same_t, io["expected_output"]) > 1e-3


def test_offset_rope_differs_from_shared(golden_dir, golden):
    _, io = golden
    offset = load_original_transformer(
        golden_dir / "original_weights.safetensors", golden_dir / "original_config.json", source_rope="offset"
    ).eval()
    assert offset.config.source_rope == "offset"
    assert relative_error(run(offset, io), io["expected_output"]) > 1e-3


def test_without_source_it_is_the_plain_text_to_video_forward(golden):
    model, io = golden
    plain = HunyuanVideoTransformer3DModel(
        **{
            k: v
            for k, v in model.config.items()
            if not k.startswith("_") and k not in ("source_rope", "image_condition_type", "prediction")
        }
    )
    plain.load_state_dict(model.state_dict())
    plain.eval()
    args = (io["noisy_target_latents"], io["timestep"], io["text_states"], io["text_mask"], io["text_states_2"])
    with torch.no_grad():
        expected = plain(*args, guidance=io["guidance"]).sample
    ours = run(model, io, source_latents=None)
    assert relative_error(ours, expected) < 1e-5
    # ...and the source does change the prediction.
    assert relative_error(run(model, io), expected) > 1e-3


def test_source_may_have_other_frame_count_but_not_other_size(golden):
    model, io = golden
    source = io["source_latents"][:, :, :2]
    assert run(model, io, source_latents=source).shape == io["noisy_target_latents"].shape
    with pytest.raises(ValueError, match="source latents"):
        run(model, io, source_latents=io["source_latents"][..., :4])
    with pytest.raises(ValueError, match="channels"):
        run(model, io, hidden_states=io["noisy_target_latents"][:, :2], source_latents=None)


def test_bad_constructor_arguments_name_the_value():
    with pytest.raises(ValueError, match="source_rope='sideways'"):
        ICVETransformer3DModel(
            num_attention_heads=2, attention_head_dim=12, rope_axes_dim=(4, 4, 4), source_rope="sideways"
        )
    with pytest.raises(ValueError, match="rope_axes_dim"):
        ICVETransformer3DModel(num_attention_heads=2, attention_head_dim=12, rope_axes_dim=(4, 4, 2))


def test_source_change_prediction_is_the_velocity_toward_the_source_plus_the_change(golden):
    model, io = golden
    config = {k: v for k, v in model.config.items() if k != "_use_default_values"}  # it would restore "velocity"
    changed = ICVETransformer3DModel.from_config({**config, "prediction": "source_change"}).eval()
    changed.load_state_dict(model.state_dict())
    change = run(model, io)  # the same weights read as a velocity: the raw output
    sigma = io["timestep"] / 1000
    expected = (io["noisy_target_latents"] - (io["source_latents"] + change)) / sigma
    assert torch.allclose(run(changed, io), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="source_change' needs source latents shaped like the target"):
        run(changed, io, source_latents=None)
    with pytest.raises(ValueError, match="prediction='x0'"):
        ICVETransformer3DModel(num_attention_heads=2, attention_head_dim=12, rope_axes_dim=(4, 4, 4), prediction="x0")


@pytest.mark.parametrize("with_source", [True, False])
def test_sample_prediction_is_the_velocity_toward_the_predicted_clean_target(golden, with_source):
    model, io = golden
    config = {k: v for k, v in model.config.items() if k != "_use_default_values"}
    clean = ICVETransformer3DModel.from_config({**config, "prediction": "sample"}).eval()
    clean.load_state_dict(model.state_dict())
    source = io["source_latents"] if with_source else None
    guess = run(model, io, source_latents=source)  # the same weights read as a velocity: the raw output
    expected = (io["noisy_target_latents"] - guess) / (io["timestep"] / 1000)
    assert torch.allclose(run(clean, io, source_latents=source), expected, rtol=1e-5, atol=1e-5)


def test_save_and_reload_keeps_outputs(golden, tmp_path):
    model, io = golden
    model.save_pretrained(tmp_path / "transformer")
    reloaded = ICVETransformer3DModel.from_pretrained(tmp_path / "transformer").eval()
    assert reloaded.config.source_rope == "shared"
    assert torch.equal(run(reloaded, io), run(model, io))


def test_conversion_is_strict(golden_dir, tmp_path):
    weights = load_file(golden_dir / "original_weights.safetensors")
    config = json.loads((golden_dir / "original_config.json").read_text())

    incomplete = dict(weights)
    del incomplete["final_layer.linear.bias"]
    save_file(incomplete, tmp_path / "incomplete.safetensors")
    with pytest.raises(ValueError, match=r"missing \['proj_out.bias'\]"):
        load_original_transformer(tmp_path / "incomplete.safetensors", config)

    extra = dict(weights, **{"double_blocks.0.mystery.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"double_blocks\.0\.mystery\.weight"):
        convert_state_dict(extra, hidden_size=config["hidden_size"])

    with pytest.raises(ValueError, match="safetensors"):
        load_original_transformer(tmp_path / "weights.pt", config)


def test_single_block_split_uses_the_configured_hidden_size(golden_dir):
    weights = load_file(golden_dir / "original_weights.safetensors")
    config = json.loads((golden_dir / "original_config.json").read_text())
    converted = convert_state_dict(weights, hidden_size=config["hidden_size"])
    hidden = config["hidden_size"]
    assert converted["single_transformer_blocks.0.attn.to_q.weight"].shape == (hidden, hidden)
    assert converted["single_transformer_blocks.0.proj_mlp.weight"].shape == (4 * hidden, hidden)
    assert config_from_original(config)["attention_head_dim"] == hidden // config["heads_num"]
