"""The demo recipe end to end at toy scale: every step runs, the result ships and loads, and a rerun resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.config import load_config
from training.curation.manifest import read_manifest
from training.recipes.demo import STEPS, DemoRecipe, main, run
from training.world import EDIT_TYPES


def _toy(tmp_path, **extra) -> DemoRecipe:
    overrides = [
        f"root={tmp_path / 'demo'}", f"ship_to={tmp_path / 'shipped'}", "raw_videos=2", "raw_seconds=12",
        "workers=1", "stage2.count=6", "global_pairs=4", "benchmark_per_type=1", "model.statistics_clips=4",
        "model.steps=2", "model.transformer={num_layers: 1, num_single_layers: 1}",
        "pretrain.steps=2", "pretrain.batch_size=2", "pretrain.log_every=1", "pretrain.validation.count=1",
        "pretrain.validation.steps=1", "finetune.steps=2", "finetune.batch_size=2", "finetune.log_every=1",
        "finetune.validation.count=1", "finetune.validation.steps=1", *extra.get("more", []),
    ]  # fmt: skip
    return load_config(DemoRecipe, Path(__file__).parents[1] / "configs" / "recipes" / "demo.yaml", overrides)


def test_toy_recipe_runs_every_step_and_ships_a_loadable_model(tmp_path):
    recipe = _toy(tmp_path)
    times = run(recipe)
    assert list(times) == list(STEPS)
    shipped = tmp_path / "shipped"
    assert (shipped / "model_index.json").is_file() and (shipped / "training.json").is_file()
    results = json.loads((tmp_path / "demo" / "eval" / "demo" / "results.json").read_text())
    assert results["aggregates"]["overall"]["count"] == 6  # one benchmark edit of each type, all scored

    from editor.loading import load_pipeline
    from editor.video import read_video

    pipe = load_pipeline(shipped)
    bench = list(read_manifest(tmp_path / "demo" / "benchmark" / "manifest.jsonl"))
    assert sorted(r["edit_type"] for r in bench) == sorted(EDIT_TYPES)
    out = pipe(read_video(bench[0]["source"]["path"]).frames, bench[0]["instruction"], num_inference_steps=1)
    assert out.frames.shape == (1, 9, 64, 64, 3)

    # Everything is recorded as done: a rerun does nothing.
    assert run(recipe) == {}


def test_unknown_step_and_bad_config(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown step 'bake'"):
        run(DemoRecipe(root=tmp_path), until="bake")
    assert main([f"root={tmp_path}", "colour=red"]) == 2
    assert "unknown config keys" in capsys.readouterr().err
