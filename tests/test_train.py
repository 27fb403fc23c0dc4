"""Training: flow-matching math, a short run that learns, exact resume, non-finite losses, checkpoint rotation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny_pipeline import pair_record

from editor.loading import load_pipeline
from editor.video import read_video, write_video
from training import flow_matching
from training.cache import CacheConfig, build_cache
from training.config import load_config
from training.curation.manifest import write_jsonl
from training.export import export_checkpoint, round_weights
from training.lora import LoraSettings
from training.run_log import read_log
from training.train import TrainConfig, check_config, checkpoint_dirs, drop_instructions, lr_factor, main, train
from training.validation import ValidationConfig

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


def test_change_weights_stress_edited_positions():
    source = torch.zeros(1, 4, 2, 3, 3)
    target = source.clone()
    target[0, 2, 1, 0, 0] = 0.5  # one position of one latent frame changes, in one channel
    weights = flow_matching.change_weights(source, target, weight=10.0)
    assert weights.shape == (1, 1, 2, 3, 3)
    assert weights[0, 0, 1, 0, 0] == 10.0 and weights.sum() == 10.0 + 17
    pred, velocity = torch.zeros(1, 4, 2, 3, 3), torch.zeros(1, 4, 2, 3, 3)
    velocity[0, :, 1, 0, 0] = 1.0  # all the error sits at the changed position
    plain = flow_matching.loss(pred, velocity)
    weighted = flow_matching.loss(pred, velocity, weights)
    assert plain.item() == pytest.approx(4 / 72) and weighted.item() == pytest.approx(10 * 4 / (27 * 4))


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


@pytest.mark.parametrize("name", ["stage1", "stage2"])
def test_stage_configs_load(name):
    config = load_config(TrainConfig, Path(__file__).parents[1] / "configs" / "train" / f"{name}.yaml")
    config.validation.manifest = None  # the data sets are not here
    check_config(config)
    assert config.mixed_precision == "bf16" and config.init != "scratch"
    if name == "stage2":
        assert config.init == "runs/stage1/pipeline"  # stage 2 continues from stage 1's result


def test_yes_no_on_off_stay_words_in_configs_and_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("mixed_precision: no\ntensorboard: false\n")
    config = load_config(TrainConfig, tmp_path / "c.yaml", ["gradient_checkpointing=true", "init=off"])
    assert config.mixed_precision == "no" and config.init == "off"
    assert config.tensorboard is False and config.gradient_checkpointing is True
    assert load_config(TrainConfig, None, ["mixed_precision=no"]).mixed_precision == "no"
    with pytest.raises(ValueError, match=r"validation=None .*validation\.manifest=null"):
        check_config(load_config(TrainConfig, None, ["cache=c", "init=runs/stage1/pipeline", "validation=null"]))


def test_bad_values_are_named():
    with pytest.raises(ValueError, match="transformer"):
        check_config(TrainConfig(cache=Path("c"), init="scratch"))
    with pytest.raises(ValueError, match=r"instruction_dropout=1\.5"):
        check_config(TrainConfig(cache=Path("c"), init="x", instruction_dropout=1.5))
    with pytest.raises(ValueError, match=r"pooled_dropout=-0\.1"):
        check_config(TrainConfig(cache=Path("c"), init="x", pooled_dropout=-0.1))
    # YAML reads `1e-3` as text; numbers written that way still arrive as numbers.
    config = load_config(TrainConfig, None, ["lr=1e-3", "ema_decay=9.99e-1", "lora.rank=8", "validation.every=50"])
    assert config.lr == 1e-3 and config.ema_decay == 0.999 and config.lora.rank == 8 and config.validation.every == 50
    with pytest.raises(ValueError, match="lr='fast' must be a number"):
        load_config(TrainConfig, None, ["lr=fast"])


def test_pooled_dropout_swaps_only_the_pooled_vector():
    batch = {"text_states": torch.ones(64, 4, 3), "text_mask": torch.ones(64, 4), "text_pooled": torch.ones(64, 3)}
    empty = {"text_states": torch.zeros(4, 3), "text_mask": torch.zeros(4), "text_pooled": torch.zeros(3)}
    drop_instructions(batch, empty, 0.5, torch.Generator().manual_seed(0), keys=("text_pooled",))
    dropped = (batch["text_pooled"] == 0).all(dim=1)
    assert 10 < int(dropped.sum()) < 54 and bool(((batch["text_pooled"] == 1).all(dim=1) | dropped).all())
    assert bool((batch["text_states"] == 1).all()) and bool((batch["text_mask"] == 1).all())
    # The whole instruction goes when no keys are named.
    drop_instructions(batch, empty, 1.0, torch.Generator().manual_seed(0))
    assert all(float(batch[key].abs().sum()) == 0 for key in batch)


def test_lr_schedule_warms_up_holds_then_decays_to_zero():
    factors = [lr_factor(step, steps=10, warmup_steps=2, decay_steps=4) for step in range(11)]
    assert factors == pytest.approx([0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0])
    # Extending a run with the same decay length replays it up to where its decay began.
    longer = [lr_factor(step, steps=20, warmup_steps=2, decay_steps=4) for step in range(16)]
    assert longer[:6] == factors[:6] and longer[6:16] == [1.0] * 10
    assert [lr_factor(step, steps=10, warmup_steps=2, decay_steps=0) for step in (5, 9)] == [1.0, 1.0]
    with pytest.raises(ValueError, match=r"warmup_steps=2 \+ decay_steps=9 exceed steps=10"):
        check_config(TrainConfig(cache=Path("c"), init="x", steps=10, warmup_steps=2, decay_steps=9))
    check_config(TrainConfig(cache=Path("c"), init="x", steps=10, warmup_steps=50))  # a short run's warmup
    with pytest.raises(ValueError, match="decay_steps=-1"):
        check_config(TrainConfig(cache=Path("c"), init="x", decay_steps=-1))


def test_a_warm_restart_replays_the_first_cycle_then_starts_the_schedule_again():
    factors = [lr_factor(step, steps=10, warmup_steps=2, decay_steps=4) for step in range(11)]
    restarted = [lr_factor(step, steps=18, warmup_steps=2, decay_steps=4, restarts=(10,)) for step in range(19)]
    assert restarted[:10] == factors[:10]
    assert restarted[10:] == pytest.approx([0.0, 0.5, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0])
    check_config(TrainConfig(cache=Path("c"), init="x", steps=18, warmup_steps=2, decay_steps=4, restarts=[10]))
    with pytest.raises(ValueError, match=r"decay_steps=4 exceed the cycle of steps 10-14"):
        check_config(TrainConfig(cache=Path("c"), init="x", steps=14, warmup_steps=2, decay_steps=4, restarts=[10]))
    for bad in ([18], [0], [12, 10], [10, 10]):
        with pytest.raises(ValueError, match=r"restarts=.* must rise strictly"):
            check_config(TrainConfig(cache=Path("c"), init="x", steps=18, restarts=bad))
    with pytest.raises(ValueError, match="restarts=10 must be a list"):
        check_config(TrainConfig(cache=Path("c"), init="x", steps=18, restarts=10))


def test_resume_matches_uninterrupted_run(tmp_path, cache_dir, model_dir):
    # Accumulation over 2 batches of 2 from 3 samples: epochs roll over inside steps, so the data position matters.
    # The first part runs at a constant LR and the resumed one adds a decay: the way a run is extended.
    settings = dict(gradient_accumulation=2, checkpoint_every=2, steps=6, decay_steps=2)
    whole = train(_config(cache_dir, model_dir, tmp_path / "whole", **settings))

    train(_config(cache_dir, model_dir, tmp_path / "split", **{**settings, "steps": 4, "decay_steps": 0}))
    with pytest.raises(ValueError, match="--resume"):
        train(_config(cache_dir, model_dir, tmp_path / "split", **settings))
    resumed = train(_config(cache_dir, model_dir, tmp_path / "split", **settings), resume=True)

    expected, got = _weights(whole / "transformer"), _weights(resumed / "transformer")
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)
    whole_log = (tmp_path / "whole" / "log.jsonl").read_text().splitlines()
    split_log = (tmp_path / "split" / "log.jsonl").read_text().splitlines()
    assert [json.loads(r)["loss"] for r in split_log] == [json.loads(r)["loss"] for r in whole_log]
    assert [json.loads(r)["lr"] for r in whole_log][-3:] == pytest.approx([1e-3, 5e-4, 0.0])

    # Resuming with fewer steps than the latest checkpoint holds would export later weights as an earlier model.
    with pytest.raises(ValueError, match="step-000006, is past steps=4"):
        train(_config(cache_dir, model_dir, tmp_path / "split", **{**settings, "steps": 4}), resume=True)


def test_compiled_training_follows_eager_with_the_same_weight_names(tmp_path, cache_dir, model_dir):
    # Compiled in place, its checkpoints and pipeline keep the eager model's weight names, so they load as an eager
    # run's do (resume included).
    settings = dict(steps=4, checkpoint_every=2, warmup_steps=0)
    eager = train(_config(cache_dir, model_dir, tmp_path / "eager", **settings))
    compiled = train(_config(cache_dir, model_dir, tmp_path / "compiled", compile=True, **settings))

    expected, got = _weights(eager / "transformer"), _weights(compiled / "transformer")
    assert got.keys() == expected.keys()
    checkpoint = tmp_path / "compiled" / "checkpoints" / "step-000002" / "transformer"
    assert _weights(checkpoint).keys() == expected.keys()
    for name in expected:  # fused kernels round differently: close, not equal
        torch.testing.assert_close(got[name], expected[name], rtol=1e-3, atol=1e-4, msg=name)
    losses = [[json.loads(r)["loss"] for r in (tmp_path / run / "log.jsonl").read_text().splitlines()]
              for run in ("eager", "compiled")]  # fmt: skip
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)


def test_stages_in_one_process_each_train_in_their_own_precision(tmp_path, cache_dir, model_dir):
    from accelerate.state import AcceleratorState

    # A recipe's stages: bf16, then fp32, then bf16 again, as the recipe runs them, one after another.
    for number, precision in enumerate(["bf16", "no", "bf16"]):
        train(_config(cache_dir, model_dir, tmp_path / str(number), steps=2, mixed_precision=precision))
        assert AcceleratorState().mixed_precision == precision
        assert (tmp_path / str(number) / "pipeline" / "model_index.json").is_file()


def test_non_finite_loss_names_the_step(tmp_path, cache_dir, model_dir, monkeypatch):
    calls = []
    original = flow_matching.loss

    def breaks_on_third(pred, target, weights=None):
        calls.append(1)
        value = original(pred, target, weights)
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


# What a run leaves behind -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world_data(tmp_path_factory, model_dir) -> tuple[Path, Path]:
    """(cache, manifest) of 12 procedural-world editing pairs, 9 frames at 64x64."""
    from training.world import instruction_for, random_edit, random_scene, render_pair

    root = tmp_path_factory.mktemp("world_data")
    rng = np.random.default_rng(3)
    records = []
    while len(records) < 12:
        scene = random_scene(rng, num_frames=9)
        try:
            edit = random_edit(scene, rng, num_frames=9)
        except ValueError:
            continue
        source, target, _ = render_pair(scene, edit, 9, 64, 64)
        number = len(records)
        paths = [
            write_video(root / f"{number}_{side}.mp4", frames, 8.0, lossless=True)
            for side, frames in (("source", source), ("target", target))
        ]
        text = instruction_for(edit, scene, rng, num_frames=9)
        records.append({**pair_record(f"world-{number}", *paths, text, seconds=9 / 8), "edit_type": edit.type})
    manifest = write_jsonl(root / "manifest.jsonl", records)
    cache = root / "cache"
    build_cache(CacheConfig(manifest=manifest, model=model_dir, output=cache, frames=9, device="cpu"))
    return cache, manifest


def test_tiny_model_learns_and_its_pipeline_edits(tmp_path, world_data, model_dir):
    cache, manifest = world_data
    config = _config(
        cache, model_dir, tmp_path / "run", steps=300, batch_size=4, lr=2e-3, instruction_dropout=0.1, log_every=10,
        validation=ValidationConfig(manifest=manifest, count=2, every=200, steps=2),
    )  # fmt: skip
    final = train(config)

    losses = [r["loss"] for r in read_log(tmp_path / "run")]
    assert len(losses) == 30
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last < 0.5 * first, f"loss fell only from {first:.3f} to {last:.3f}"

    run = tmp_path / "run"
    assert (run / "loss.png").stat().st_size > 1000
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    for step in ("step-000200", "step-000300"):
        videos = sorted((run / "samples" / step).glob("*.mp4"))
        assert [v.stem for v in videos] == ["world-0", "world-1"]
        clip = read_video(videos[0])
        assert clip.frames.shape[1:3] == (64, 3 * 64)  # source | edit | target

    # The result is a pipeline folder the editor loads and edits with.
    pipe = load_pipeline(final)
    source = read_video(manifest.parent / "0_source.mp4").frames
    result = pipe(video=source, prompt="make the ball blue", num_inference_steps=2)
    assert result.frames[0].shape == (9, 64, 64, 3)


def test_lora_trains_adapters_only_and_merges(tmp_path, cache_dir, model_dir):
    from training.lora import ADAPTER_WEIGHTS

    final = train(_config(cache_dir, model_dir, tmp_path / "run", lora=LoraSettings(rank=4), steps=3, lr=1e-2))
    before, after = _weights(model_dir / "transformer"), _weights(final / "transformer")
    assert before.keys() == after.keys()  # merged: plain parameter names, loadable without peft
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("transformer_blocks.", "single_transformer_blocks.")) for k in changed)
    assert not any("norm" in k for k in changed)  # modulation linears are not targets
    assert (tmp_path / "run" / "lora" / ADAPTER_WEIGHTS).is_file()
    with pytest.raises(ValueError, match="outside the transformer blocks"):
        check_lora = LoraSettings(rank=2, targets=r".*proj_out")
        train(_config(cache_dir, model_dir, tmp_path / "bad", lora=check_lora, steps=1))


@pytest.mark.parametrize("variant", ["lora", "ema"])
def test_resume_is_exact_with_lora_and_ema(tmp_path, cache_dir, model_dir, variant):
    extra = {"lora": LoraSettings(rank=4)} if variant == "lora" else {"ema_decay": 0.9}
    settings = dict(checkpoint_every=2, steps=4, lr=1e-2, **extra)
    whole = train(_config(cache_dir, model_dir, tmp_path / "whole", **settings))
    train(_config(cache_dir, model_dir, tmp_path / "split", **{**settings, "steps": 2}))
    names = {p.name for p in checkpoint_dirs(tmp_path / "split")[-1].iterdir()}
    assert ("lora.safetensors" in names) == (variant == "lora") and ("ema.safetensors" in names) == (variant == "ema")
    resumed = train(_config(cache_dir, model_dir, tmp_path / "split", **settings), resume=True)
    expected, got = _weights(whole / "transformer"), _weights(resumed / "transformer")
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)
    # The last checkpoint, exported, is what training saved: the average, or the adapters merged.
    exported = _weights(export_checkpoint(tmp_path / "whole") / "transformer")
    assert (tmp_path / "whole" / "pipeline-step-000004" / "model_index.json").is_file()
    # Where the weights were loaded from (a checkpoint, after a resume) is not written as if it were the model's.
    for folder in (resumed, tmp_path / "whole" / "pipeline-step-000004"):
        assert "_name_or_path" not in json.loads((folder / "transformer" / "config.json").read_text())
    for name in expected:
        torch.testing.assert_close(exported[name], expected[name], rtol=1e-6, atol=1e-6, msg=name)
    with pytest.raises(ValueError, match="step=3 has no checkpoint"):
        export_checkpoint(tmp_path / "whole", step=3)


def test_rounded_weights_load_as_the_model_cast_at_load_time(tmp_path, model_dir):
    import shutil

    from editor.loading import LoadOptions

    shutil.copytree(model_dir, tmp_path / "rounded")
    round_weights(tmp_path / "rounded" / "transformer", "bf16")
    stored = _weights(tmp_path / "rounded" / "transformer")
    assert {v.dtype for v in stored.values() if torch.is_floating_point(v)} == {torch.bfloat16}

    def state(folder: Path, precision: str) -> dict[str, torch.Tensor]:
        pipe = load_pipeline(folder, options=LoadOptions(device="cpu", precision=precision))
        return pipe.transformer.state_dict()

    cast, rounded = state(model_dir, "bf16"), state(tmp_path / "rounded", "bf16")
    upcast = state(tmp_path / "rounded", "fp32")
    for name, value in cast.items():
        torch.testing.assert_close(rounded[name], value, rtol=0, atol=0, msg=name)
        assert upcast[name].dtype == torch.float32
        torch.testing.assert_close(upcast[name], value.float(), rtol=0, atol=0, msg=name)
    with pytest.raises(ValueError, match="precision 'int3'"):
        round_weights(tmp_path / "rounded" / "transformer", "int3")
    with pytest.raises(FileNotFoundError, match="no safetensors"):
        round_weights(tmp_path, "bf16")


def test_ema_weights_are_the_saved_ones(tmp_path, cache_dir, model_dir):
    # The last checkpoint holds both the raw weights and the average; the saved pipeline must carry the average.
    output = tmp_path / "run"
    final = train(_config(cache_dir, model_dir, output, ema_decay=0.99, steps=3, lr=1e-2, checkpoint_every=3))
    checkpoint = checkpoint_dirs(output)[-1]
    raw, average = _weights(checkpoint / "transformer"), load_file(str(checkpoint / "ema.safetensors"))
    saved = _weights(final / "transformer")
    assert int(average.pop("__updates__")) == 3
    for name, value in saved.items():
        torch.testing.assert_close(value, average[name], rtol=0, atol=0, msg=name)
    assert any(not torch.equal(raw[name], saved[name]) for name in saved)


def test_ema_decay_warms_up():
    from training.ema import EMA

    model = torch.nn.Linear(2, 2)
    initial = model.weight.detach().clone()
    ema = EMA(model, 0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # decay min(0.999, 1/10): the average moves 90% of the way at once
    torch.testing.assert_close(ema.shadow["weight"], 0.1 * initial + 0.9 * torch.ones(2, 2))
    for _ in range(5000):
        ema.update(model)
    torch.testing.assert_close(ema.shadow["weight"], torch.ones(2, 2))  # no trace of the random start
    restored = EMA(model, 0.999)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 5001 and torch.equal(restored.shadow["weight"], ema.shadow["weight"])


def test_eight_bit_adam_needs_cuda(tmp_path, cache_dir, model_dir):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="adamw8bit needs CUDA"):
        train(_config(cache_dir, model_dir, tmp_path / "run", optimizer="adamw8bit", steps=1))


def test_two_process_ddp_on_cpu(tmp_path, cache_dir, model_dir):
    # accelerate 1.15 starts a single process for `--cpu --num_processes 2` (multi-CPU goes through MPI); torchrun,
    # which `--multi_gpu` uses, starts two, and ACCELERATE_USE_CPU keeps them on the CPU with gloo.
    import os
    import subprocess
    import sys

    output = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
        "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0", "-m", "training.train",
        f"cache={cache_dir}", f"output={output}", f"init={model_dir}", "steps=3", "batch_size=1", "log_every=1",
        "checkpoint_every=2", "lr=1e-3",
    ]  # fmt: skip
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in done.stderr
    assert [r["step"] for r in read_log(output)] == [1, 2, 3]  # written once, by the main process
    names = sorted(p.name for p in checkpoint_dirs(output)[-1].iterdir())
    assert "rng-0.safetensors" in names and "rng-1.safetensors" in names  # each process's noise stream
    before, after = _weights(model_dir / "transformer"), _weights(output / "pipeline" / "transformer")
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_killed_run_resumes_to_the_same_losses(tmp_path, cache_dir, model_dir):
    """SIGKILL a real training process after its step-4 checkpoint; the resumed run's losses match a whole run's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    settings = [f"cache={cache_dir}", f"init={model_dir}", "batch_size=2", "lr=1e-3", "log_every=1",
                "checkpoint_every=2", "keep_last=5", "tensorboard=false"]  # fmt: skip
    whole = tmp_path / "whole"
    assert main([*settings, f"output={whole}", "steps=6"]) == 0

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "training.train", *settings, f"output={killed}", "steps=100000"]
    # Same thread count as this process: float sums, and so losses, depend on how work is split over threads.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    process = subprocess.Popen(command, cwd=Path(__file__).parents[1], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / "checkpoints" / "step-000004").is_dir() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (killed / "checkpoints" / "step-000004").is_dir(), "the run never reached its step-4 checkpoint"
    assert not (killed / "pipeline").exists()

    assert main([*settings, f"output={killed}", "steps=6", "--resume"]) == 0
    expected = [r["loss"] for r in read_log(whole)]
    assert [r["step"] for r in read_log(killed)] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in read_log(killed)] == expected
    torch.testing.assert_close(
        _weights(killed / "pipeline" / "transformer"), _weights(whole / "pipeline" / "transformer"), rtol=0, atol=0
    )


def test_captioned_clips_train_a_text_to_video_base(tmp_path, model_dir, monkeypatch):
    from editor.transformer import ICVETransformer3DModel
    from training.world.captions import write_captioned_clips

    manifest = write_captioned_clips(tmp_path / "captions", 8, seed=2, fps=8.0)
    cache = tmp_path / "cache"
    build_cache(CacheConfig(manifest=manifest, model=model_dir, output=cache, frames=9, device="cpu"))
    with pytest.raises(ValueError, match=r"change_weight=5\.0 .*captioned clips"):
        train(_config(cache, model_dir, tmp_path / "weighted", change_weight=5.0))

    sources = []
    forward = ICVETransformer3DModel.forward

    def spy(self, *args, **kwargs):
        sources.append(kwargs.get("source_latents"))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(ICVETransformer3DModel, "forward", spy)
    config = _config(cache, model_dir, tmp_path / "run", steps=80, batch_size=4, lr=2e-3, instruction_dropout=0.1)
    final = train(config)

    assert len(sources) == 80 and all(source is None for source in sources)  # the plain text-to-video forward
    losses = [r["loss"] for r in read_log(tmp_path / "run")]
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.7 * first, f"loss fell only from {first:.3f} to {last:.3f}"
    # The base is an editing pipeline like any other: stage 1 starts from it.
    frames = read_video(manifest.parent / "videos" / "clip00000.mp4").frames
    assert load_pipeline(final)(video=frames, prompt="make the ball blue", num_inference_steps=2).frames.shape[1] == 9
