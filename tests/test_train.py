"""Training: flow-matching math, a short run that learns, exact resume, non-finite losses, checkpoint rotation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny_pipeline import pair_record

from editor.video import write_video
from training import flow_matching
from training.cache import CacheConfig, build_cache
from training.config import load_config
from training.curation.manifest import write_jsonl
from training.train import TrainConfig, check_config, checkpoint_dirs, main, train

INSTRUCTIONS = ["make the ball blue", "remove the flower vase", "replace the dog with a cat"]


# Flow matching ----------------------------------------------------------------------------------------------------


def test_noisy_endpoints_and_velocity():
    x0, noise = torch.randn(2, 4, 1, 4, 4), torch.randn(2, 4, 1, 4, 4)
    torch.testing.assert_close(flow_matching.noisy(x0, noise, torch.zeros(2)), x0)
    torch.testing.assert_close(flow_matching.noisy(x0, noise, torch.ones(2)), noise)
    mixed = flow_matching.noisy(x0, noise, torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(mixed[1], 0.25 * x0[1] + 0.75 * noise[1])
    velocity = flow_matching.velocity_target(x0, noise)
    torch.testing.assert_close(velocity, noise - x0)
    # Moving along the velocity from sigma=0.25 by 0.5 lands on sigma=0.75.
    s = torch.full((2,), 0.25)
    torch.testing.assert_close(
        flow_matching.noisy(x0, noise, s) + 0.5 * velocity, flow_matching.noisy(x0, noise, s + 0.5)
    )
    assert flow_matching.loss(velocity, velocity).item() == 0.0


def test_shift_and_logit_normal():
    for shift in (1.0, 3.0, 7.0):
        value = flow_matching.shift_sigmas(torch.tensor(0.5), shift)
        assert value.item() == pytest.approx(shift / (1 + shift))
    sigmas = flow_matching.sample_timesteps(10_000, torch.Generator().manual_seed(0), logit_std=2.0, shift=3.0)
    assert sigmas.shape == (10_000,) and bool(((sigmas > 0) & (sigmas < 1)).all())
    plain = flow_matching.sample_timesteps(10_000, torch.Generator().manual_seed(0))
    assert plain.median().item() == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ValueError, match="shift"):
        flow_matching.sample_timesteps(2, shift=0.0)


# Training ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from tiny_pipeline import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("train_model") / "model")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, model_dir) -> Path:
    """Three cached pairs of 9 frames at 64x64, encoded by the tiny pipeline."""
    root = tmp_path_factory.mktemp("train_data")
    rng = np.random.default_rng(0)
    records = []
    for number, instruction in enumerate(INSTRUCTIONS):
        paths = [
            write_video(root / f"{number}_{side}.mp4", rng.integers(0, 256, (12, 64, 64, 3), dtype=np.uint8), 8.0)
            for side in ("source", "target")
        ]
        records.append(pair_record(f"pair-{number}", paths[0], paths[1], instruction))
    manifest = write_jsonl(root / "manifest.jsonl", records)
    output = root / "cache"
    build_cache(CacheConfig(manifest=manifest, model=model_dir, output=output, frames=9, device="cpu", shard_size=2))
    return output


def _config(cache_dir: Path, model_dir: Path, output: Path, **overrides) -> TrainConfig:
    settings = dict(
        cache=cache_dir,
        output=output,
        init=str(model_dir),
        steps=6,
        batch_size=2,
        lr=1e-3,
        warmup_steps=2,
        instruction_dropout=0.5,
        checkpoint_every=100,
        log_every=1,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "diffusion_pytorch_model.safetensors"))


def test_short_run_learns(tmp_path, cache_dir, model_dir):
    final = train(_config(cache_dir, model_dir, tmp_path / "run")) / "transformer"

    before, after = _weights(model_dir / "transformer"), _weights(final)
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(r["loss"]) and r["samples_per_s"] > 0 for r in log)
    assert log[0]["lr"] == pytest.approx(5e-4) and log[-1]["lr"] == pytest.approx(1e-3)  # warmup, then constant

    assert checkpoint_dirs(tmp_path / "run") == []  # checkpoint_every=100 is never reached


def test_demo_config_loads_and_scratch_needs_a_transformer():
    config = load_config(TrainConfig, Path(__file__).parents[1] / "configs" / "train" / "demo.yaml")
    check_config(config)
    assert config.mixed_precision == "bf16" and config.init != "scratch"
    with pytest.raises(ValueError, match="transformer"):
        check_config(TrainConfig(cache=Path("c"), init="scratch"))
    with pytest.raises(ValueError, match=r"instruction_dropout=1\.5"):
        check_config(TrainConfig(cache=Path("c"), init="x", instruction_dropout=1.5))


def test_resume_matches_uninterrupted_run(tmp_path, cache_dir, model_dir):
    # Accumulation over 2 batches of 2 from 3 samples: epochs roll over inside steps, so the data position matters.
    settings = dict(gradient_accumulation=2, checkpoint_every=2, steps=4)
    whole = train(_config(cache_dir, model_dir, tmp_path / "whole", **settings))

    train(_config(cache_dir, model_dir, tmp_path / "split", **{**settings, "steps": 2}))
    with pytest.raises(ValueError, match="--resume"):
        train(_config(cache_dir, model_dir, tmp_path / "split", **settings))
    resumed = train(_config(cache_dir, model_dir, tmp_path / "split", **settings), resume=True)

    expected, got = _weights(whole / "transformer"), _weights(resumed / "transformer")
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)
    whole_log = (tmp_path / "whole" / "log.jsonl").read_text().splitlines()
    split_log = (tmp_path / "split" / "log.jsonl").read_text().splitlines()
    assert [json.loads(r)["loss"] for r in split_log] == [json.loads(r)["loss"] for r in whole_log]


def test_non_finite_loss_names_the_step(tmp_path, cache_dir, model_dir, monkeypatch):
    calls = []
    original = flow_matching.loss

    def breaks_on_third(pred, target):
        calls.append(1)
        value = original(pred, target)
        return value * float("nan") if len(calls) == 3 else value

    monkeypatch.setattr(flow_matching, "loss", breaks_on_third)
    with pytest.raises(RuntimeError, match=r"non-finite loss .* at step 3"):
        train(_config(cache_dir, model_dir, tmp_path / "run"))


def test_checkpoint_rotation_keeps_last(tmp_path, cache_dir, model_dir):
    output = tmp_path / "run"
    train(_config(cache_dir, model_dir, output, steps=5, checkpoint_every=1, keep_last=2))
    kept = checkpoint_dirs(output)
    assert [p.name for p in kept] == ["step-000004", "step-000005"]
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == ["step-000004", "step-000005"]
    names = sorted(p.name for p in kept[-1].iterdir())
    assert names == ["optimizer.safetensors", "rng-0.safetensors", "state.json", "transformer"]
    assert not list(kept[-1].rglob("*.bin")) and not list(kept[-1].rglob("*.pt"))
    assert json.loads((kept[-1] / "state.json").read_text())["step"] == 5


def test_cli_reports_bad_config(tmp_path, cache_dir, model_dir, capsys):
    assert main([f"cache={cache_dir}", f"output={tmp_path / 'a'}", "steps=0"]) == 2
    assert "steps=0" in capsys.readouterr().err
    assert main(["colour=red"]) == 2
    assert "unknown config keys" in capsys.readouterr().err
    code = main([f"cache={cache_dir}", f"output={tmp_path / 'b'}", f"init={model_dir}", "steps=1", "batch_size=4"])
    assert code == 2 and "batch_size=4" in capsys.readouterr().err
    code = main([f"cache={cache_dir}", f"output={tmp_path / 'c'}", f"init={model_dir}", "steps=2", "batch_size=1"])
    assert code == 0 and (tmp_path / "c" / "pipeline" / "transformer" / "config.json").is_file()
