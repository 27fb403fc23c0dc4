"""The edit pipeline on tiny random components: sampling, guidance, inputs, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_pipeline import TINY_DEFAULTS, build_tiny_pipeline

from editor.pipeline import EditProgress, VideoEditPipeline

INSTRUCTION = "replace the dog with a cat"


@pytest.fixture(scope="module")
def pipe() -> VideoEditPipeline:
    pipe = build_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(12, 50, 70, 3), dtype=np.uint8)


@pytest.fixture
def forward_calls(pipe, monkeypatch) -> list[dict]:
    """The keyword arguments of every transformer forward while the test runs."""
    calls = []
    forward = pipe.transformer.forward

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return forward(*args, **kwargs)

    monkeypatch.setattr(pipe.transformer, "forward", spy)
    return calls


def edit(pipe, video, seed=0, **kwargs):
    return pipe(video, INSTRUCTION, generator=torch.Generator().manual_seed(seed), **kwargs)


def test_edit_keeps_aspect_at_the_model_area_and_uses_its_defaults(pipe, clip):
    out = edit(pipe, clip)
    # 12 source frames -> 9 (4k+1, the model's default); 50x70 at about 64*64 pixels, multiples of 16.
    assert out.frames.shape == (1, 9, 48, 80, 3)
    assert out.frames.dtype == np.uint8
    assert out.source_frames.shape == (9, 48, 80, 3)
    assert out.fps == TINY_DEFAULTS.fps


def test_same_seed_same_edit_other_seed_other_edit(pipe, clip):
    a, b, c = edit(pipe, clip, seed=1), edit(pipe, clip, seed=1), edit(pipe, clip, seed=2)
    assert np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)


def test_explicit_size_frames_and_pad_mode(pipe, clip):
    out = edit(pipe, clip, height=32, width=64, num_frames=5, resize_mode="pad")
    assert out.frames.shape == (1, 5, 32, 64, 3)
    # 50x70 fitted into 32x64 keeps its aspect: ~45 wide, black borders left and right.
    assert out.source_frames[:, :, :5].max() == 0 and out.source_frames[:, :, -5:].max() == 0


def test_tensor_input_and_several_prompts(pipe, clip):
    video = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255  # F, 3, H, W
    out = pipe(video, [INSTRUCTION, "make the ball blue"], num_frames=5, generator=torch.Generator().manual_seed(0))
    assert out.frames.shape == (2, 5, 48, 80, 3)


def test_unconditional_branch_keeps_the_source(pipe, clip, forward_calls):
    calls = forward_calls
    edit(pipe, clip, num_inference_steps=3, guidance_scale=4.0, negative_prompt="blurry", batch_guidance=False)
    assert len(calls) == 6  # conditional + unconditional per step
    assert all(call["source_latents"] is not None for call in calls)
    sources = {call["source_latents"].data_ptr() for call in calls}
    assert len(sources) == 1  # the same clean source latents at every step, never noised
    cond, uncond = calls[0]["encoder_hidden_states"], calls[1]["encoder_hidden_states"]
    assert not torch.equal(cond, uncond)
    guidance = calls[0]["guidance"]
    assert torch.allclose(guidance, torch.full_like(guidance, 1000.0 * TINY_DEFAULTS.embedded_guidance_scale))

    calls.clear()
    edit(pipe, clip, num_inference_steps=3, guidance_scale=1.0)
    assert len(calls) == 3  # guidance 1 runs the conditional branch only


def test_batched_guidance_runs_both_branches_in_one_forward_with_the_same_result(pipe, clip, forward_calls):
    calls = forward_calls
    batched = edit(pipe, clip, num_inference_steps=3, guidance_scale=4.0, negative_prompt="blurry")
    assert len(calls) == 3  # a small clip batches by default: one forward per step
    call = calls[0]
    assert call["hidden_states"].shape[0] == 2 and call["source_latents"].shape[0] == 2
    half = call["hidden_states"].shape[0] // 2
    assert torch.equal(call["hidden_states"][:half], call["hidden_states"][half:])  # one target, two instructions
    assert not torch.equal(call["encoder_hidden_states"][:half], call["encoder_hidden_states"][half:])

    separate = edit(
        pipe, clip, num_inference_steps=3, guidance_scale=4.0, negative_prompt="blurry", batch_guidance=False
    )
    assert len(calls) == 3 + 6
    assert np.abs(batched.frames.astype(int) - separate.frames.astype(int)).max() <= 1


def test_guidance_changes_the_result(pipe, clip):
    assert not np.array_equal(edit(pipe, clip, guidance_scale=1.0).frames, edit(pipe, clip, guidance_scale=5.0).frames)


def test_schedule_uses_the_flow_shift(pipe):
    timesteps = pipe.prepare_timesteps(4, torch.device("cpu"))
    sigma = 0.75
    shift = pipe.scheduler.config.shift
    expected = shift * sigma / (1 + (shift - 1) * sigma) * 1000
    assert timesteps[0].item() == pytest.approx(1000.0)
    assert timesteps[1].item() == pytest.approx(expected, rel=1e-4)


def test_progress_reports_every_stage_and_can_cancel(pipe, clip):
    seen: list[EditProgress] = []
    edit(pipe, clip, num_inference_steps=3, progress_callback=seen.append)
    stages = [p.stage for p in seen]
    assert stages[0] == "encode" and stages[-1] == "decode"
    assert [p.step for p in seen if p.stage == "denoise"] == [1, 2, 3]

    class Cancelled(Exception):
        pass

    def cancel(progress):
        if progress.stage == "denoise":
            raise Cancelled

    with pytest.raises(Cancelled):
        edit(pipe, clip, progress_callback=cancel)


def test_latent_output_and_step_end_callback(pipe, clip):
    steps = []

    def on_step_end(pipeline, i, t, tensors):
        steps.append(i)
        return {"latents": tensors["latents"]}

    out = edit(pipe, clip, output_type="latent", callback_on_step_end=on_step_end)
    assert out.frames.shape == (1, 4, 3, 6, 10)  # B, C, F', H', W': 9 frames 48x80 through an 8x/4x VAE
    assert steps == [0, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"height": 40}, "height=40"),
        ({"width": 0}, "width=0"),
        ({"num_frames": 8}, "num_frames=8"),
        ({"num_frames": 13}, "num_frames=13 but the source has only 12"),
        ({"num_inference_steps": 0}, "num_inference_steps=0"),
        ({"guidance_scale": 0.5}, "guidance_scale=0.5"),
        ({"embedded_guidance_scale": -1.0}, "embedded_guidance_scale=-1.0"),
        ({"resize_mode": "stretch"}, "resize_mode='stretch'"),
        ({"output_type": "pil"}, "output_type='pil'"),
        ({"fps": -3.0}, "fps=-3.0"),
        ({"negative_prompt": 3}, "negative_prompt"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(pipe, clip, kwargs, message):
    with pytest.raises(ValueError, match=message):
        edit(pipe, clip, **kwargs)


@pytest.mark.parametrize(
    ("video", "prompt", "message"),
    [
        (np.zeros((9, 32, 32), dtype=np.uint8), INSTRUCTION, "uint8"),
        (np.zeros((9, 32, 32, 3), dtype=np.float32), INSTRUCTION, "uint8"),
        (torch.zeros(9, 32, 32, 3), INSTRUCTION, r"\[F, 3, H, W\]"),
        ("/no/such/video.mp4", INSTRUCTION, "is not a file"),
        ([1, 2, 3], INSTRUCTION, "video must be"),
        (np.zeros((9, 32, 32, 3), dtype=np.uint8), "   ", "empty"),
        (np.zeros((9, 32, 32, 3), dtype=np.uint8), [], "non-empty"),
    ],
)
def test_bad_video_or_prompt(pipe, video, prompt, message):
    with pytest.raises(ValueError, match=message):
        pipe(video, prompt)


def test_save_and_load_round_trip(pipe, clip, tmp_path):
    pipe.save_pretrained(tmp_path / "pipe")
    reloaded = VideoEditPipeline.from_pretrained(tmp_path / "pipe")
    reloaded.set_progress_bar_config(disable=True)
    assert reloaded.defaults == pipe.defaults
    assert reloaded.scheduler.config.shift == pipe.scheduler.config.shift
    # Reloaded (memory-mapped) weights may take other kernels: equal up to float rounding, not bit for bit.
    latents = edit(reloaded, clip, output_type="latent").frames
    torch.testing.assert_close(latents, edit(pipe, clip, output_type="latent").frames, atol=1e-5, rtol=1e-5)
    difference = edit(reloaded, clip).frames.astype(int) - edit(pipe, clip).frames
    assert np.abs(difference).max() <= 1


def test_sentence_encoder_pipeline(clip):
    pipe = build_tiny_pipeline(text="sentence")
    pipe.set_progress_bar_config(disable=True)
    assert edit(pipe, clip, num_frames=5).frames.shape == (1, 5, 48, 80, 3)


def test_pipeline_without_defaults_uses_the_icve_preset(pipe):
    from editor.presets import ICVE

    bare = VideoEditPipeline(pipe.transformer, pipe.vae, pipe.scheduler, pipe.text_encoder)
    assert bare.defaults == ICVE.defaults
    assert (bare.defaults.num_inference_steps, bare.defaults.guidance_scale) == (50, 6.0)
    assert bare.defaults.embedded_guidance_scale == 1.0 and ICVE.flow_shift == 7.0


def test_vae_tiling_is_per_call_and_restored(pipe, clip, monkeypatch):
    seen = []
    encode, decode = pipe.vae.encode, pipe.vae.decode
    monkeypatch.setattr(pipe.vae, "encode", lambda x: seen.append(pipe.vae.use_tiling) or encode(x))
    monkeypatch.setattr(pipe.vae, "decode", lambda z: seen.append(pipe.vae.use_tiling) or decode(z))
    edit(pipe, clip, vae_tiling=True)
    edit(pipe, clip)  # a small clip: no tiling
    assert seen == [True, True, False, False]
    assert pipe.vae.use_tiling is False


def test_an_untrained_source_change_model_returns_its_source():
    from tiny_pipeline import tiny_transformer

    pipe = build_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    encoder = pipe.text_encoder
    pipe.transformer = tiny_transformer(encoder.states_dim, encoder.pooled_dim, prediction="source_change")
    clip = np.random.default_rng(0).integers(0, 256, size=(9, 64, 64, 3), dtype=np.uint8)
    out = pipe(clip, "make the ball blue", guidance_scale=3.0, output_type="latent", num_inference_steps=5)
    frames, _ = pipe.load_source(clip, height=64, width=64, num_frames=9, fps=TINY_DEFAULTS.fps, start=0.0, end=None,
                                 resize_mode="crop")  # fmt: skip
    source = pipe.encode_video(frames, torch.device("cpu"))
    torch.testing.assert_close(out.frames, source, rtol=1e-4, atol=1e-4)
