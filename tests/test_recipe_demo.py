"""The demo recipe end to end at toy scale: every step runs, the result ships and loads, and a rerun resumes."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training.config import load_config
from training.curation.manifest import read_manifest
from training.recipes.demo import STEPS, DemoRecipe, main, run
from training.world import EDIT_TYPES


def _toy_overrides(tmp_path) -> list[str]:
    overrides = [
        f"root={tmp_path / 'demo'}", f"ship_to={tmp_path / 'shipped'}", "raw_videos=2", "raw_seconds=12",
        "workers=1", "stage2.count=6", "global_pairs=4", "benchmark_per_type=1", "model.statistics_clips=4",
        "model.steps=2", "model.transformer={num_layers: 1, num_single_layers: 1}",
        "pretrain.steps=2", "pretrain.batch_size=2", "pretrain.log_every=1", "pretrain.validation.count=1",
        "pretrain.validation.steps=1", "finetune.steps=2", "finetune.decay_steps=0", "finetune.restarts=[]",
        "finetune.batch_size=2", "finetune.log_every=1", "finetune.validation.count=1", "finetune.validation.steps=1",
        "base.steps=2", "base.batch_size=2", "base.log_every=1",
        # A compile costs a minute per clip shape: more than the toy trains.
        "pretrain.compile=false", "finetune.compile=false",
    ]  # fmt: skip
    return overrides


RECIPE = Path(__file__).parents[1] / "configs" / "recipes" / "demo.yaml"
TRANSFORMER_WEIGHTS = Path("transformer") / "diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> tuple[DemoRecipe, dict[str, float], list[str]]:
    """A toy run of the whole recipe: (recipe, step times, its overrides)."""
    tmp_path = tmp_path_factory.mktemp("recipe")
    overrides = _toy_overrides(tmp_path)
    recipe = load_config(DemoRecipe, RECIPE, overrides)
    return recipe, run(recipe), overrides


def test_toy_recipe_runs_every_step_and_ships_a_loadable_model(toy):
    recipe, times, _ = toy
    tmp_path = Path(recipe.root).parent
    assert list(times) == list(STEPS)
    shipped = tmp_path / "shipped"
    assert (shipped / "model_index.json").is_file() and (shipped / "training.json").is_file()
    results = json.loads((tmp_path / "demo" / "eval" / "demo" / "results.json").read_text())
    page = (tmp_path / "demo" / "eval" / "demo" / "results.md").read_text()
    assert (shipped / "benchmark.md").read_text() == page and "Sampling: " in page  # the page travels with the model
    assert results["aggregates"]["overall"]["count"] == 6  # one benchmark edit of each type, all scored
    # The shipped weights are the evaluated ones: rounded to the precision the benchmark ran in.
    from editor.loading import PRECISIONS

    trained = load_file(str(tmp_path / "demo" / "runs" / "finetune" / "pipeline" / TRANSFORMER_WEIGHTS))
    stored = load_file(str(shipped / TRANSFORMER_WEIGHTS))
    dtype = PRECISIONS[results["model"]["precision"]]
    for name, value in trained.items():
        assert stored[name].dtype == dtype
        torch.testing.assert_close(stored[name], value.to(dtype), rtol=0, atol=0, msg=name)

    from editor.loading import load_pipeline
    from editor.video import read_video

    pipe = load_pipeline(shipped)
    bench = list(read_manifest(tmp_path / "demo" / "benchmark" / "manifest.jsonl"))
    assert sorted(r["edit_type"] for r in bench) == sorted(EDIT_TYPES)
    out = pipe(read_video(bench[0]["source"]["path"]).frames, bench[0]["instruction"], num_inference_steps=1)
    assert out.frames.shape == (1, 9, 64, 64, 3)

    # Everything is recorded as done: a rerun does nothing.
    assert run(recipe) == {}


def test_a_text_to_video_base_is_where_stage_one_starts(toy, tmp_path):
    from training.run_log import read_log
    from training.train import TrainConfig

    recipe, _, overrides = toy
    root = tmp_path / "demo"
    # The data steps' outputs; what a base changes (and caches, which name the folder they were made from) is redone.
    shutil.copytree(recipe.root, root, ignore=shutil.ignore_patterns("init", "cache-*", "runs", "eval"))
    based = load_config(DemoRecipe, RECIPE, [*overrides, f"root={root}", f"ship_to={tmp_path / 'shipped'}",
                                             "base_clips=4", "model.whitening=1.0"])  # fmt: skip
    with pytest.raises(ValueError, match="base_clips changed"):
        run(based)  # the steps done without a base are not silently reused
    run(based, only="captions")
    assert list(run(based)) == list(STEPS)[list(STEPS).index("init") :]

    captions = read_manifest(root / "captions" / "manifest.jsonl")
    assert len(captions) == 4 and all(r["source"] is None for r in captions)
    assert [r["step"] for r in read_log(root / "runs" / "base")] == [1, 2]
    base = load_config(TrainConfig, root / "runs" / "base" / "config.yaml", [])
    assert base.validation.manifest is None and base.init == str(root / "init")
    pretrain = load_config(TrainConfig, root / "runs" / "pretrain" / "config.yaml", [])
    assert pretrain.init == str(root / "runs" / "base" / "pipeline")
    assert (tmp_path / "shipped" / "model_index.json").is_file()
    assert json.loads((tmp_path / "shipped" / "vae" / "config.json").read_text())["whitening"] == 1.0


def test_unknown_step_and_bad_config(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown step 'bake'"):
        run(DemoRecipe(root=tmp_path), until="bake")
    assert main([f"root={tmp_path}", "colour=red"]) == 2
    assert "unknown config keys" in capsys.readouterr().err


def test_ablation_trains_every_variant_at_equal_compute(toy):
    from training.recipes.ablation import VARIANTS, AblationConfig
    from training.recipes.ablation import run as run_ablation
    from training.run_log import read_log

    recipe, _, overrides = toy
    config = AblationConfig(recipe=RECIPE, recipe_overrides=overrides, budget=4, pretrain_share=0.5)
    summary = run_ablation(config)
    assert list(summary["variants"]) == list(VARIANTS)
    root = Path(recipe.root) / "ablation"
    steps = {
        variant: sum(len(read_log(root / f"{variant}-seed0" / stage)) for stage in ("pretrain", "finetune"))
        for variant in VARIANTS
    }
    assert set(steps.values()) == {4}, steps  # equal compute: 4 logged optimizer steps each
    transformer = root / "pretrain_sft_offset-seed0" / "finetune" / "pipeline" / "transformer"
    offset = json.loads((transformer / "config.json").read_text())
    assert offset["source_rope"] == "offset"
    assert "| pretrain_sft_10pct | 1 |" in (root / "summary.md").read_text()
    assert "Partial" not in (root / "summary.md").read_text()


def test_an_ablation_run_trained_with_other_settings_is_refused_not_reused(toy):
    from training.recipes.ablation import AblationConfig
    from training.recipes.ablation import run as run_ablation

    recipe, _, overrides = toy
    config = AblationConfig(recipe=RECIPE, recipe_overrides=overrides, variants=["sft"], budget=4)
    run_ablation(config)  # trains it, or reuses the run another test left
    pipeline = Path(recipe.root) / "ablation" / "sft-seed0" / "finetune" / "pipeline"
    weights = (pipeline / TRANSFORMER_WEIGHTS).read_bytes()
    config.budget = 6
    with pytest.raises(ValueError, match=r"sft-seed0/finetune was trained with other settings \(steps changed\)"):
        run_ablation(config)
    config.budget, config.train = 4, {"lr": 1e-3}
    with pytest.raises(ValueError, match=r"\(lr changed\)"):
        run_ablation(config)
    assert (pipeline / TRANSFORMER_WEIGHTS).read_bytes() == weights  # the earlier run is kept as it was


def test_ablation_summary_says_how_many_runs_it_holds():
    from training.recipes.ablation import _summarise, summary_markdown

    rows = [{"variant": "sft", "seed": 0, "clean_success": 0.1, "strict_success": 0.05, "verified": 0.2,
             "psnr": 18.0, "psnr_outside_mask": 24.0}]  # fmt: skip
    summary = {"budget_steps": 10, "pretrain_share": 0.3, "runs": rows, "planned_runs": 5,
               "variants": _summarise(rows)}  # fmt: skip
    text = summary_markdown(summary)
    assert "Partial: 1 of 5 runs have finished" in text
    assert "| sft | 1 | 10.0% | 5.0% | 20.0% | 18.0 | 24.0 |" in text


def test_the_ablation_reproduce_line_names_the_variants_and_seeds_it_ran_with():
    from training.recipes.ablation import VARIANTS
    from training.recipes.results import _ablation_settings

    def summary(variants: list[str], **plan) -> dict:
        runs = [{"variant": variant, "seed": 0} for variant in variants]
        return {"budget_steps": 40, "pretrain_share": 0.3, "runs": runs, **plan}

    # Partial: one run of two seeds of two variants has finished; the line is the command that was given.
    partial = summary(["sft"], planned_variants=["sft", "pretrain_sft"], planned_seeds=[0, 1])
    assert _ablation_settings(partial) == " budget=40 pretrain_share=0.3 seeds=[0,1] variants=[sft,pretrain_sft]"
    # A summary from before the plan was kept: its runs, complete, say it.
    assert _ablation_settings(summary(["sft", "pretrain_sft"])).endswith(" seeds=[0] variants=[sft,pretrain_sft]")
    assert "variants=" not in _ablation_settings(summary(list(VARIANTS)))  # every variant: the default


def test_a_root_without_an_ablation_points_at_the_ablation_pages_written_elsewhere():
    from training.recipes.results import _ablation_section

    text = "\n".join(_ablation_section(None, ["ABLATION-2000.md", "ABLATION-4000.md"]))
    assert "No ablation ran under this recipe's root" in text
    assert "[ABLATION-2000.md](ABLATION-2000.md), [ABLATION-4000.md](ABLATION-4000.md)" in text
    assert "ABLATION" not in "\n".join(_ablation_section(None, []))


def test_ablation_contrasts_say_how_many_seeds_stand_behind_them():
    from training.recipes.results import _ablation_contrasts

    def row(variant: str, seed: int, clean: float) -> dict:
        return {"variant": variant, "seed": seed, "clean_success": clean, "strict_success": clean / 2,
                "verified": clean, "psnr": 18.0, "psnr_outside_mask": 24.0}  # fmt: skip

    def contrasts(rows: list[dict]) -> str:
        return "\n".join(_ablation_contrasts(rows, edits=180))

    rows = [row("sft", 0, 0.1), row("pretrain_sft", 0, 0.2), row("pretrain", 0, 0.0)]
    text = contrasts(rows)
    assert "| Does stage-1 pretraining help fine-tuning? | pretrain_sft vs sft | 1 | 20.0% vs 10.0% (+10.0) |" in text
    assert "with 1 seed per comparison" in text
    # A second seed under way has reached sft and pretrain only: pretrain_sft is still read against sft's seed 0.
    rows += [row("sft", 1, 0.3), row("pretrain", 1, 0.1)]
    text = contrasts(rows)
    assert "| pretrain_sft vs sft | 1 | 20.0% vs 10.0% (+10.0) |" in text
    assert "| Does stage-1 pretraining alone edit? | pretrain vs sft | 2 | 5.0% vs 20.0% (-15.0) |" in text
    assert "with 1-2 seeds per comparison" in text


def test_ablation_contrasts_read_each_gap_edit_by_edit_when_the_outcomes_are_kept():
    from training.recipes.results import _ablation_contrasts

    clean = {"sft": [True, False, True, False], "pretrain_sft": [True, True, True, False]}
    outcomes = {f"{v}-seed0": {"clean_success": dict(enumerate(hits)), "strict_success": dict(enumerate(hits))}
                for v, hits in clean.items()}  # fmt: skip
    rows = [{"variant": v, "seed": 0, "clean_success": sum(h) / 4, "strict_success": sum(h) / 4}
            for v, h in {**clean, "pretrain": [False] * 4}.items()]  # fmt: skip
    text = "\n".join(_ablation_contrasts(rows, edits=4, outcomes=outcomes))
    # Differences 0, 1, 0, 0: a gap of 25 points whose paired standard error is 0.5 / sqrt(4).
    gap = "75.0% vs 50.0% (+25.0 ± 25.0)"
    assert f"| pretrain_sft vs sft | 1 | {gap} | {gap} | +25.0 |" in text
    # pretrain's outcomes were not kept: its question keeps the plain gap and has no per-seed one.
    assert "| pretrain vs sft | 1 | 0.0% vs 50.0% (-50.0) | 0.0% vs 50.0% (-50.0) | - |" in text
    assert "the same 4 edits with the same noise" in text and "paired standard error" in text


def test_results_page_is_written_from_the_recipe_files(toy, tmp_path):
    from training.recipes.ablation import AblationConfig
    from training.recipes.ablation import run as run_ablation
    from training.recipes.results import main as write_results

    recipe, _, overrides = toy
    run_ablation(AblationConfig(recipe=RECIPE, recipe_overrides=overrides, budget=4, pretrain_share=0.5))  # resumes
    output = tmp_path / "docs" / "RESULTS.md"
    identity = Path(recipe.root) / "eval" / "identity"
    compare = ["--compare", f"returns its source (steps=0)={identity}"]  # a label may name settings
    compare += ["--reproduce", "python -m training.evaluate --model source"]
    assert write_results(["--output", str(output), *compare, *overrides]) == 0
    text = output.read_text()
    results = json.loads((Path(recipe.root) / "eval" / "demo" / "results.json").read_text())
    for edit_type in EDIT_TYPES:
        assert f"| {edit_type} | 1 |" in text
        assert (output.parent / "results" / f"strip-{edit_type}.png").is_file()
    overall = results["aggregates"]["overall"]["clean_success"]
    assert f"| all | 6 | {100 * overall['rate']:.0f}% ({overall['hits']}/{overall['of']})" in text
    strict = results["aggregates"]["overall"]["strict_success"]
    assert f"| {100 * strict['rate']:.0f}% ({strict['hits']}/{strict['of']}) |" in text
    assert "Strict success also asks the edit region to match the ground truth" in text
    assert "| finetune |" in text and "| pretrain_sft_offset | 1 |" in text
    assert "| pretrain_sft_10pct, seed 0 |" in text  # per edit type, from the run's own evaluation
    assert "| Do shared RoPE positions beat offset ones? | pretrain_sft vs pretrain_sft_offset |" in text
    assert "budget=4 pretrain_share=0.5 seeds=[0]" in text
    assert shlex.quote(f"recipe_overrides={json.dumps(overrides)}") in text  # the reproduce line is the one that ran
    assert (output.parent / "results" / "ablation.png").is_file()
    assert "| returns its source (steps=0) |" in text
    assert f"--compare 'returns its source (steps=0)={identity}'" in text
    assert "\npython -m training.evaluate --model source\n" in text  # a --reproduce command, listed
    # The recipe's settings as given, its root among them, reproduce the recipe and the page.
    recipe_args = " ".join(shlex.quote(item) for item in overrides)
    assert f"\npython -m training.recipes.demo {recipe_args}   #" in text
    assert f"\npython -m training.recipes.results {recipe_args} --compare" in text
    assert write_results(["--output", str(output), "--compare", str(identity), *overrides]) == 2  # no LABEL=

    # The record beside the page writes it again without the recipe's files.
    moved = tmp_path / "elsewhere" / "RESULTS.md"
    shutil.copytree(output.parent / "results", moved.parent / "results")
    assert write_results(["--output", str(moved), "--rewrite"]) == 0
    assert moved.read_text() == text
    assert write_results(["--output", str(moved), "--rewrite", *overrides]) == 2  # the record holds the settings
    assert write_results(["--output", str(tmp_path / "empty" / "RESULTS.md"), "--rewrite"]) == 2  # no record


def test_an_ablation_page_is_written_alone_and_again_from_its_record(toy, tmp_path):
    from training.recipes.ablation import AblationConfig
    from training.recipes.ablation import run as run_ablation
    from training.recipes.results import main as write_results

    recipe, _, overrides = toy
    run_ablation(AblationConfig(recipe=RECIPE, recipe_overrides=overrides, budget=4, pretrain_share=0.5))  # resumes
    output = tmp_path / "docs" / "ABLATION-4.md"
    assert write_results(["--ablation-only", "--output", str(output), *overrides]) == 0
    text = output.read_text()
    assert "## The shipped model" not in text  # the ablation alone
    assert "| `pretrain_sft_offset` | as `pretrain_sft`, the source at offset RoPE positions" in text
    assert "Equal compute: 4 optimizer steps per run." in text
    assert "The two-stage variants spend 50% of the steps on stage 1." in text
    assert "| pretrain_sft_10pct | 1 |" in text and "| sft, seed 0 |" in text
    assert "| Does stage-1 pretraining help fine-tuning? | pretrain_sft vs sft | 1 |" in text
    recipe_args = " ".join(shlex.quote(item) for item in overrides)
    assert f"{recipe_args} --until cache_stage2" in text
    assert f"--ablation-only --output {output} {recipe_args}\n" in text  # finds the same root again
    assert "![ablation](results/ablation-4-plot.png)" in text
    assert (output.parent / "results" / "ablation-4-plot.png").is_file()
    identity = Path(recipe.root) / "eval" / "identity"
    assert write_results(["--ablation-only", "--output", str(output), "--compare", f"x={identity}", *overrides]) == 2
    assert write_results(["--ablation-only", "--output", str(output), f"root={tmp_path / 'none'}"]) == 2

    moved = tmp_path / "elsewhere" / "ABLATION-4.md"
    shutil.copytree(output.parent / "results", moved.parent / "results")
    assert write_results(["--ablation-only", "--output", str(moved), "--rewrite"]) == 0
    assert moved.read_text() == text
    assert write_results(["--output", str(moved), "--rewrite"]) == 2  # RESULTS.md's record is another file


def test_a_record_older_than_a_setting_counts_it_at_its_default(tmp_path, monkeypatch):
    from training.recipes import demo

    calls = []
    for name in STEPS:
        monkeypatch.setitem(STEPS, name, lambda recipe, name=name: calls.append(name))
    # A run from before the setting existed made no canonical edits, as its default (false) says.
    recipe = load_config(DemoRecipe, RECIPE, [f"root={tmp_path}", "canonical_edits=false"])
    run(recipe, until="global_pairs")
    done = demo._done_file(recipe, "global_pairs")
    record = json.loads(done.read_text())
    del record["settings"]["canonical_edits"]  # as a run from before the setting existed wrote it
    done.write_text(json.dumps(record))

    calls.clear()
    run(recipe, until="global_pairs")
    assert calls == []
    canonical = load_config(DemoRecipe, RECIPE, [f"root={tmp_path}", "canonical_edits=true"])
    with pytest.raises(
        ValueError, match=r"step 'global_pairs' was done with other settings \(canonical_edits changed"
    ):
        run(canonical, until="global_pairs")


def test_a_step_done_with_other_settings_is_not_reused(tmp_path, monkeypatch):
    from training.recipes import demo

    calls = []
    for name in STEPS:
        monkeypatch.setitem(STEPS, name, lambda recipe, name=name: calls.append(name))
    recipe = load_config(DemoRecipe, RECIPE, [f"root={tmp_path}"])
    run(recipe)
    assert calls == list(STEPS)

    longer = load_config(DemoRecipe, RECIPE, [f"root={tmp_path}", "finetune.steps=9000"])
    with pytest.raises(ValueError, match=r"step 'finetune' was done with other settings \(finetune changed\)"):
        run(longer)
    assert calls == list(STEPS)  # nothing ran: every step before finetune matched

    calls.clear()
    run(longer, only="finetune")  # redoes it and forgets the steps that depend on it
    assert calls == ["finetune"]
    assert not demo._done_file(longer, "evaluate").exists()
    run(longer)
    assert calls == ["finetune", "evaluate", "timing", "ship"]
    assert list(demo.step_settings(longer, "raw")) == ["seed", "raw_videos", "raw_seconds", "model.size"]
    assert demo.step_settings(longer, "finetune")["finetune"]["steps"] == 9000


def test_rewording_stage_two_keeps_the_steps_before_it_and_reaches_its_curation(tmp_path, monkeypatch):
    import training.curate
    from training.recipes import demo

    calls = []
    for name in STEPS:
        monkeypatch.setitem(STEPS, name, lambda recipe, name=name: calls.append(name))
    single = load_config(DemoRecipe, RECIPE, [f"root={tmp_path}", "vary_instructions=false"])
    run(single, until="stage2")
    varied = load_config(DemoRecipe, RECIPE, [f"root={tmp_path}", "vary_instructions=true"])
    with pytest.raises(ValueError, match=r"step 'stage2' was done with other settings \(vary_instructions changed"):
        run(varied, until="stage2")
    calls.clear()
    run(varied, only="stage2")
    assert calls == ["stage2"]  # raw, stage1 and the global pairs are kept

    configs = []
    monkeypatch.setattr(training.curate, "curate", lambda stage, config: configs.append((stage, config)))
    demo.step_stage2(varied)
    demo.step_stage2(single)
    assert [(stage, config.vary_instructions) for stage, config in configs] == [("stage2", True), ("stage2", False)]
