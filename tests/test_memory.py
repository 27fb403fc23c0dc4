"""Memory plans: the estimate, the choice under a budget, and each plan editing exactly like the resident model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_pipeline import build_tiny_pipeline

from editor.memory import GiB, MemoryEstimate, apply_memory_plan, choose_plan, estimate_memory
from editor.transformer import ICVETransformer3DModel


@pytest.fixture(scope="module")
def full_size_parameters() -> int:
    with torch.device("meta"):  # HYVideo-T/2-cfgdistill: 20 + 40 blocks, hidden 3072, 24 heads
        return sum(p.numel() for p in ICVETransformer3DModel().parameters())


def icve_estimate(parameters: int, transformer_bytes: float, text_bytes: float) -> MemoryEstimate:
    # 768x480x61: 16 latent frames of 96x60, patch 2 -> 23040 tokens per clip; llava-llama-3-8B + CLIP-L.
    return estimate_memory(
        transformer_parameters=parameters, transformer_hidden=3072, transformer_bytes_per_parameter=transformer_bytes,
        text_encoder_bytes=int(7.5e9 * text_bytes + 123e6 * 2), vae_bytes=int(246e6 * 2),
        latent_tokens=16 * 48 * 30, text_tokens=256, frames=61, height=768, width=480,
    )  # fmt: skip


def test_full_size_model_has_thirteen_billion_parameters(full_size_parameters):
    assert 12.5e9 < full_size_parameters < 13.2e9


def test_plans_chosen_for_common_gpus(full_size_parameters):
    bf16 = icve_estimate(full_size_parameters, 2, 2)
    assert 23 * GiB < bf16.transformer < 25 * GiB
    assert choose_plan(bf16, 80 * GiB).plan == "none"
    assert choose_plan(bf16, 24 * GiB).plan == "group_offload"
    int8 = icve_estimate(full_size_parameters, 1.03, 1.03)
    assert choose_plan(int8, 24 * GiB).plan == "model_offload"
    # Leaner plans never need more; tiling never needs more.
    for estimate in (bf16, int8):
        needs = [
            estimate.needs(plan, tiling) for plan in ("none", "model_offload", "group_offload") for tiling in (0, 1)
        ]
        assert needs[0] >= needs[2] >= needs[4] and all(a >= b for a, b in zip(needs[::2], needs[1::2], strict=True))


def test_vae_tiling_is_chosen_when_the_decode_does_not_fit(full_size_parameters):
    estimate = icve_estimate(full_size_parameters, 2, 2)
    assert estimate.vae_decode > 8 * estimate.vae_decode_tiled
    assert choose_plan(estimate, 80 * GiB).vae_tiling
    small = estimate_memory(
        transformer_parameters=10**6, transformer_hidden=64, transformer_bytes_per_parameter=4, text_encoder_bytes=0,
        vae_bytes=0, latent_tokens=64, text_tokens=8, frames=9, height=64, width=64,
    )  # fmt: skip
    assert choose_plan(small, GiB).vae_tiling is False


def test_batched_guidance_doubles_the_activations_only():
    sizes = dict(
        transformer_parameters=10**6, transformer_hidden=64, transformer_bytes_per_parameter=4, text_encoder_bytes=0,
        vae_bytes=0, latent_tokens=64, text_tokens=8, frames=9, height=64, width=64,
    )  # fmt: skip
    one, two = estimate_memory(**sizes), estimate_memory(**sizes, batch=2)
    assert two.activations == 2 * one.activations
    assert (two.transformer, two.vae_decode) == (one.transformer, one.vae_decode)


def test_too_little_memory_warns_and_takes_the_leanest_plan(full_size_parameters, caplog):
    choice = choose_plan(icve_estimate(full_size_parameters, 2, 2), 4 * GiB)
    assert (choice.plan, choice.vae_tiling) == ("group_offload", True)
    assert "out-of-memory" in caplog.text


@pytest.mark.parametrize("plan", ["none", "model_offload", "group_offload"])
def test_each_plan_edits_like_the_resident_pipeline(plan):
    clip = np.random.default_rng(0).integers(0, 256, size=(9, 40, 56, 3), dtype=np.uint8)
    reference = build_tiny_pipeline()
    reference.set_progress_bar_config(disable=True)
    expected = reference(clip, "make the ball blue", generator=torch.Generator().manual_seed(0)).frames
    pipe = build_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    apply_memory_plan(pipe, plan, torch.device("cpu"))
    assert pipe.memory_plan == plan  # what the app reports, "auto" having been resolved before
    assert np.array_equal(
        pipe(clip, "make the ball blue", generator=torch.Generator().manual_seed(0)).frames, expected
    )


def test_unknown_plan():
    with pytest.raises(ValueError, match="'everywhere'"):
        apply_memory_plan(build_tiny_pipeline(), "everywhere", torch.device("cpu"))
