"""Loading real models by preset: local folders in both layouts, unreachable hub ids, the conversion cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from editor import loading
from editor.loading import LoadOptions, ModelFilesMissing, load_pipeline
from editor.presets import DEMO, ICVE
from editor.quantization import Quantization


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(12, 40, 56, 3), dtype=np.uint8)


def test_icve_preset_from_local_folders_edits_a_clip(icve_sources, clip):
    base, transformer = icve_sources
    pipe = load_pipeline("icve", base=base, transformer=transformer, options=LoadOptions(device="cpu"))
    pipe.set_progress_bar_config(disable=True)
    assert pipe.defaults == ICVE.defaults
    assert pipe.scheduler.config.shift == ICVE.flow_shift
    assert pipe.text_encoder.config.template == "{}" and pipe.text_encoder.config.max_length == 256
    out = pipe(clip, "make the ball blue", num_inference_steps=2, height=32, width=48, num_frames=5,
               generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert out.frames.shape == (1, 5, 32, 48, 3)


def test_converted_transformer_matches_the_golden_fixture_and_is_cached(icve_sources, golden_dir):
    _, transformer = icve_sources
    options = LoadOptions(device="cpu", precision="fp32")  # the fixture was made in fp32
    pipe = load_pipeline("icve", base=icve_sources[0], transformer=transformer, options=options)
    cache = transformer / "icve-diffusers"
    assert (cache / "config.json").is_file() and (cache / "conversion.json").is_file()
    stamp = (cache / "conversion.json").stat().st_mtime_ns

    io = load_file(golden_dir / "io.safetensors")
    with torch.no_grad():
        out = pipe.transformer(
            io["noisy_target_latents"], io["timestep"], io["text_states"], io["text_mask"], io["text_states_2"],
            io["guidance"], source_latents=io["source_latents"],
        ).sample  # fmt: skip
    expected = io["expected_output"]
    assert ((out - expected).norm() / expected.norm()).item() < 1e-5

    load_pipeline("icve", base=icve_sources[0], transformer=transformer, options=LoadOptions(device="cpu"))
    assert (cache / "conversion.json").stat().st_mtime_ns == stamp  # converted once


def test_the_bundled_demo_folder_edits_with_the_defaults_its_preset_documents():
    index = Path(__file__).resolve().parents[1] / DEMO.bundled / "model_index.json"
    assert json.loads(index.read_text())["defaults"] == DEMO.defaults.to_dict()


def test_unreachable_hub_id_lists_the_files_to_fetch(icve_sources):
    _, transformer = icve_sources
    with pytest.raises(ModelFilesMissing) as error:
        load_pipeline("icve", base="someone/not-here", transformer=transformer, options=LoadOptions(device="cpu"))
    message = str(error.value)
    assert "someone/not-here" in message and "--base" in message
    assert "vae/diffusion_pytorch_model.safetensors" in message and "tokenizer_2/*" in message


def test_local_folder_missing_files_are_named(icve_sources, tmp_path):
    base, _ = icve_sources
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelFilesMissing, match=r"lacks \['\*\.safetensors'\]"):
        load_pipeline("icve", base=base, transformer=tmp_path, options=LoadOptions(device="cpu"))


def test_unknown_model_name(tmp_path):
    with pytest.raises(ModelFilesMissing, match="neither a preset"):
        load_pipeline(tmp_path / "nothing", options=LoadOptions(device="cpu"))


def test_local_pipeline_folder_with_precision(tiny_pipeline_dir, clip):
    pipe = load_pipeline(tiny_pipeline_dir, options=LoadOptions(device="cpu", precision="bf16"))
    assert pipe.transformer.dtype == torch.bfloat16
    assert pipe.text_encoder.text_model.dtype == torch.bfloat16
    pipe.set_progress_bar_config(disable=True)
    assert pipe(clip, "make it blue", num_frames=5).frames.shape[1] == 5


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "speedup", "expected"),
    [
        (True, False, 1.4, "bf16"),
        (True, False, 0.75, "fp32"),  # bf16 in hardware, yet slower than fp32: measured, not assumed
        (True, False, 1.1, "fp32"),  # a close call goes to the exact format
        (False, True, 2.0, "bf16"),
        (False, False, 3.0, "fp32"),  # emulated bf16 is never timed
    ],
)
def test_default_precision_is_bf16_only_where_the_cpu_computes_it_faster(
    monkeypatch, avx512_bf16, amx, speedup, expected
):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(loading, "cpu_bf16_speedup", lambda: speedup)
    assert LoadOptions(device="cpu").resolved_precision() == expected
    assert LoadOptions(device="cpu").dtype() == {"bf16": torch.bfloat16, "fp32": torch.float32}[expected]
    assert LoadOptions(device="cpu", precision="fp32").resolved_precision() == "fp32"  # an explicit choice wins
    assert LoadOptions(device="cuda").resolved_precision() == "bf16"


def test_the_bf16_speedup_is_measured_once():
    loading.cpu_bf16_speedup.cache_clear()
    speedup = loading.cpu_bf16_speedup(repeats=2)
    assert 0 < speedup < float("inf")
    assert loading.cpu_bf16_speedup(repeats=2) == speedup  # the same number for the rest of the process
    loading.cpu_bf16_speedup.cache_clear()


def test_bad_precision_and_bitsandbytes_without_cuda(tiny_pipeline_dir):
    with pytest.raises(ValueError, match="precision 'fp8'"):
        load_pipeline(tiny_pipeline_dir, options=LoadOptions(device="cpu", precision="fp8"))
    for quantization in (Quantization("nf4"), Quantization("int8", "bitsandbytes")):
        with pytest.raises(ValueError, match="needs a CUDA GPU"):
            load_pipeline(tiny_pipeline_dir, options=LoadOptions(device="cpu", quantization=quantization))


def test_auto_plan_with_a_cap_on_cpu(icve_sources, clip, caplog):
    base, transformer = icve_sources
    options = LoadOptions(device="cpu", max_memory_gib=0.5, frames=5, height=32, width=48)
    with caplog.at_level("INFO", logger="editor"):
        pipe = load_pipeline("icve", base=base, transformer=transformer, options=options)
    assert "estimated GiB" in caplog.text and "-> plan none" in caplog.text
    pipe.set_progress_bar_config(disable=True)
    assert pipe(clip, "x", num_inference_steps=1, height=32, width=48, num_frames=5).frames.shape[1] == 5


def test_the_estimate_counts_both_guidance_branches_where_the_pipeline_batches_them(icve_sources, monkeypatch):
    import editor.loading
    from editor.loading import estimate_for_preset
    from editor.pipeline import BATCHED_GUIDANCE_MAX_CELLS

    batches = []
    estimate = editor.loading.estimate_memory
    monkeypatch.setattr(editor.loading, "estimate_memory", lambda **kw: batches.append(kw["batch"]) or estimate(**kw))
    base, transformer = icve_sources
    short = LoadOptions(device="cpu", frames=5, height=32, width=48)  # 2 x 4 x 6 latent cells
    side = int((BATCHED_GUIDANCE_MAX_CELLS / 2) ** 0.5) * 8 + 64
    large = LoadOptions(device="cpu", frames=5, height=side, width=side)  # over the cells guidance batches
    for options in (short, large):
        estimate_for_preset(ICVE, base, transformer, options)
    assert batches == [2, 1]


def test_bundled_demo_preset_loads_its_folder_or_says_how_to_make_it(tmp_path, monkeypatch):
    from tiny_pipeline import save_tiny_pipeline

    from editor import loading
    from editor.presets import DEFAULT_MODEL

    assert DEFAULT_MODEL == "demo"
    monkeypatch.setattr(loading, "REPO_ROOT", tmp_path)
    with pytest.raises(loading.ModelFilesMissing, match=r"python -m training\.recipes\.demo"):
        load_pipeline("demo")
    save_tiny_pipeline(tmp_path / "assets" / "demo-model")
    pipe = load_pipeline()  # the default model
    assert pipe.defaults.height == 64 and pipe.transformer is not None
