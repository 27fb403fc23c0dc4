"""Tests for training.evaluate: a benchmark of procedural-world edits, run through a tiny pipeline, the identity
baseline and precomputed edits, scored and reported."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_metrics import tiny_clip_dir  # noqa: F401  (a tiny CLIP folder, shared with the metric tests)

from editor.video import write_video
from training.config import load_config
from training.curation.backends.replies import parse_judge
from training.curation.manifest import clip
from training.evaluate import EvalConfig, evaluate, main, read_benchmark
from training.evaluation.inputs import Geometry, read_mask
from training.evaluation.scoring import PSNR_CAP_DB, Scorer, strict_success
from training.world import instruction_for, random_edit, random_scene, render_pair

FRAMES, SIZE, FPS = 9, 64, 8.0
KINDS = ("recolour", "remove", "background")  # a background edit's mask leaves the objects out
GEOMETRY = {"height": SIZE, "width": SIZE, "frames": FRAMES, "fps": FPS}
REPO = Path(__file__).resolve().parents[1]


def _write(path: Path, frames: np.ndarray) -> dict:
    write_video(path, frames, FPS, lossless=True)  # read back bit for bit, so scores of equal clips are exact
    return clip(path, 0.0, FRAMES / FPS)


def _record(record_id: str, source: dict, instruction: str, edit_type: str | None, target=None, mask=None) -> dict:
    return {"id": record_id, "source": source, "target": target, "instruction": instruction, "edit_type": edit_type,
            "mask": mask, "scores": {}, "provenance": {}, "stages": {}}  # fmt: skip


def _manifest(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """One real world edit per kind in KINDS: clips on disk, records with ground truth and mask, target frames."""
    root = tmp_path_factory.mktemp("world")
    rng = np.random.default_rng(0)
    records, targets = [], {}
    for kind in KINDS:
        scene = random_scene(rng, num_frames=FRAMES)
        edit = random_edit(scene, rng, types=(kind,), num_frames=FRAMES)
        instruction = instruction_for(edit, scene, rng, num_frames=FRAMES)
        source, target, mask = render_pair(scene, edit, FRAMES, SIZE, SIZE)
        mask_frames = np.repeat(mask[..., None].astype(np.uint8) * 255, 3, axis=-1)
        record_id = f"world-{kind}"
        files = {name: _write(root / f"{kind}_{name}.mp4", frames)
                 for name, frames in (("source", source), ("target", target), ("mask", mask_frames))}  # fmt: skip
        records.append(_record(record_id, files["source"], instruction, kind, files["target"], files["mask"]))
        targets[record_id] = target
    return {"root": root, "records": records, "targets": targets, "manifest": _manifest(root / "bench.jsonl", records)}


def _config(benchmark: Path, output: Path, **values) -> EvalConfig:
    return EvalConfig(benchmark=benchmark, output=output, **values)


def _by_id(results: dict) -> dict[str, dict]:
    return {s["id"]: s for s in results["samples"]}


def test_tiny_pipeline_run_writes_every_output(world, tiny_pipeline_dir, tmp_path, capsys):
    output = tmp_path / "run"
    argv = ["--benchmark", str(world["manifest"]), "--model", str(tiny_pipeline_dir), "--output", str(output),
            "--judge", "world", "steps=1", "guidance=1"]  # fmt: skip
    assert main(argv) == 0
    assert "3 samples scored" in capsys.readouterr().out

    results = json.loads((output / "results.json").read_text())
    keys = {"model", "geometry", "settings", "metrics", "proxies", "unavailable", "counts", "aggregates", "samples"}
    assert keys <= set(results)
    assert results["model"]["kind"] == "pipeline" and results["model"]["sampling"]["steps"] == 1
    assert results["geometry"] == {**GEOMETRY, "resize_mode": "crop"}  # the pipeline's saved defaults
    assert results["model"]["sampling"]["guidance"] == 1.0
    assert set(results["proxies"]) == {"subject_consistency_proxy", "motion_smoothness_proxy"}
    assert "subject_consistency_proxy" in results["unavailable"]
    assert set(results["aggregates"]["by_edit_type"]) == set(KINDS)
    assert results["aggregates"]["overall"]["count"] == 3
    for sample in results["samples"]:
        metrics = sample["metrics"]
        assert {"temporal_flickering", "motion_smoothness_proxy", "psnr", "ssim", "judge_total"} <= set(metrics)
        assert metrics["subject_consistency_proxy"] is None
        assert "clip_text_alignment" not in metrics  # no --clip: left out, not null
        assert 0 <= metrics["judge_total"] <= 9
        assert isinstance(sample["verifier"]["followed"], bool)
        assert (output / sample["edit"]).is_file() and (output / sample["strip"]).is_file()
        assert (output / "samples" / f"{sample['name']}.json").is_file()
    # The objects lie outside a new background's mask, so they are scored as kept or not.
    assert isinstance(_by_id(results)["world-background"]["metrics"]["psnr_outside_mask"], float)

    markdown = (output / "results.md").read_text()
    page = (output / "report.html").read_text()
    for text in (markdown, page):
        assert "Motion smoothness (proxy)" in text and "Subject consistency (proxy)" in text
        assert f"capped at {PSNR_CAP_DB:g} dB" in text
        # The same weights score differently with other settings: the page says which made its edits.
        assert f"Sampling: 1 step, guidance 1, seed 0, {results['model']['precision']}." in text
    assert all(f"| {kind} |" in markdown for kind in (*KINDS, "all"))
    images = re.findall(r'<img src="([^"]+)"', page)
    assert {"plots/by_edit_type.png", "plots/distributions.png"} <= set(images)
    assert sum(i.startswith("strips/") for i in images) == 3
    assert all((output / image).is_file() for image in images)


def test_identity_baseline_is_not_a_success(world, tmp_path):
    # Ground truth == source: doing nothing reproduces the "ground truth" exactly, yet no edit happened.
    records = [{**r, "target": r["source"]} for r in world["records"]]
    benchmark = _manifest(tmp_path / "same.jsonl", records)
    results = evaluate(_config(benchmark, tmp_path / "identity", model="source", **GEOMETRY))

    assert results["model"] == {"kind": "identity", "name": "identity (source unchanged)"}
    for sample in results["samples"]:
        assert sample["metrics"]["psnr"] == PSNR_CAP_DB
        assert sample["metrics"]["ssim"] == 1.0
        assert sample["verifier"]["followed"] is False
        assert sample["clean_success"] is False
    overall = results["aggregates"]["overall"]
    assert overall["accuracy"] == {"hits": 0, "of": 3, "rate": 0.0}
    assert overall["clean_success"]["rate"] == 0.0
    markdown = (tmp_path / "identity" / "results.md").read_text()
    assert "identity (source unchanged)" in markdown and "0.0% (0/3)" in markdown
    assert "Sampling:" not in markdown  # nothing was sampled


def test_precomputed_edits_equal_to_ground_truth_succeed(world, tmp_path):
    edits = tmp_path / "edits"
    edits.mkdir()
    for record_id, target in world["targets"].items():
        write_video(edits / f"{record_id}.mp4", target, FPS, lossless=True)
    results = evaluate(_config(world["manifest"], tmp_path / "out", edits=edits, model="oracle", **GEOMETRY))

    assert results["model"]["kind"] == "edits" and results["model"]["name"] == "oracle"
    for sample in results["samples"]:
        assert sample["metrics"]["psnr"] == PSNR_CAP_DB
        assert sample["verifier"]["followed"] is True, sample["verifier"]["reason"]
        assert sample["clean_success"] is True and sample["strict_success"] is True
        assert sample["metrics"]["psnr_inside_mask"] == PSNR_CAP_DB
    assert results["aggregates"]["overall"]["accuracy"]["rate"] == 1.0
    assert all(s["accuracy"]["rate"] == 1.0 for s in results["aggregates"]["by_edit_type"].values())


def test_a_smear_left_where_an_object_was_removed_is_clean_but_not_strict(world, tmp_path):
    # The verifier only asks whether the removed object is gone; grey paint where it was passes it, and only the
    # edit region's PSNR against the ground truth tells the smear from a clean removal.
    edits = tmp_path / "edits"
    edits.mkdir()
    records = {r["id"]: r for r in world["records"]}
    for record_id, target in world["targets"].items():
        edited = target.copy()
        if record_id == "world-remove":
            mask = read_mask(records[record_id]["mask"], Geometry(SIZE, SIZE, FRAMES, FPS, "crop"))
            edited[mask] = 128
        write_video(edits / f"{record_id}.mp4", edited, FPS, lossless=True)
    results = evaluate(_config(world["manifest"], tmp_path / "out", edits=edits, model="smear", **GEOMETRY))

    smeared = _by_id(results)["world-remove"]
    assert smeared["verifier"]["followed"] is True, smeared["verifier"]["reason"]
    assert smeared["clean_success"] is True
    assert smeared["metrics"]["psnr_inside_mask"] < 22.0 <= smeared["metrics"]["psnr_outside_mask"]
    assert smeared["strict_success"] is False
    assert results["aggregates"]["overall"]["strict_success"] == {"hits": 2, "of": 3, "rate": 2 / 3}
    assert "strict success" in (tmp_path / "out" / "results.md").read_text()


@pytest.mark.parametrize(
    ("edit_type", "clean", "inside", "expected"),
    [
        ("remove", True, 30.0, True),
        ("remove", True, 15.0, False),
        ("remove", False, 30.0, False),
        ("add", True, 15.0, True),  # where an added object goes is free: the region is not compared
        ("remove", None, 30.0, None),  # no verdict or no ground truth: not counted
        ("remove", True, None, True),  # no edit region to compare
    ],
)
def test_strict_success_asks_the_edit_region_to_match_where_the_ground_truth_fixes_it(
    edit_type, clean, inside, expected
):
    sample = {"edit_type": edit_type, "clean_success": clean, "metrics": {"psnr_inside_mask": inside}}
    assert strict_success(sample, 22.0, ["add", "background"]) is expected


def test_a_new_background_that_smears_an_object_is_not_clean(world):
    """The objects are what a background edit must keep: an edit that dims them fails the region check, and a
    whole-frame mask (a style) leaves nothing outside to score."""
    record = next(r for r in world["records"] if r["edit_type"] == "background")
    target = world["targets"][record["id"]]
    mask = read_mask(record["mask"], Geometry(SIZE, SIZE, FRAMES, FPS, "crop"))
    scorer = Scorer(verify=False)
    kept = scorer.score(target, target, record["instruction"], target, mask)["metrics"]
    assert kept["psnr_outside_mask"] == PSNR_CAP_DB
    smeared = target.copy()
    smeared[~mask] //= 2
    dimmed = scorer.score(target, smeared, record["instruction"], target, mask)["metrics"]
    assert dimmed["psnr_outside_mask"] < 25 and dimmed["psnr_inside_mask"] == PSNR_CAP_DB
    whole = scorer.score(target, smeared, record["instruction"], target, np.ones_like(mask))["metrics"]
    assert whole["psnr_outside_mask"] is None


def test_baseline_run_is_shown_beside_this_one(world, tmp_path):
    evaluate(_config(world["manifest"], tmp_path / "identity", model="source", verify=True, **GEOMETRY))
    edits = tmp_path / "edits"
    edits.mkdir()
    for record_id, target in world["targets"].items():
        write_video(edits / f"{record_id}.mp4", target, FPS, lossless=True)
    config = _config(world["manifest"], tmp_path / "oracle", edits=edits, baseline=tmp_path / "identity", **GEOMETRY)
    results = evaluate(config)

    assert results["baseline"]["name"] == "identity (source unchanged)"
    assert results["baseline"]["aggregates"]["overall"]["accuracy"]["rate"] == 0.0
    for text in ((tmp_path / "oracle" / name).read_text() for name in ("results.md", "report.html")):
        assert "Against the baseline: identity (source unchanged)" in text
        assert "100.0% / 0.0%" in text  # verified: this run / the baseline, for all samples
    with pytest.raises(ValueError, match="read its clips"):
        evaluate(replace(config, output=tmp_path / "small", height=32, width=32))


class _FlakyJudge:
    """A judge whose first reply is prose without scores and whose later replies are fine."""

    def __init__(self) -> None:
        scores = '{"prompt_following": 2, "edit_quality": "3", "background_consistency": 1}'
        self.replies = iter(["I think the edit looks nice overall!"] + [scores] * 10)

    def judge(self, source, edited, instruction):
        return parse_judge(next(self.replies), "fake-judge")


def test_unusable_judge_reply_is_null_and_the_run_continues(world, tmp_path, monkeypatch):
    import training.evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module, "build_describer", lambda config: _FlakyJudge())
    config = _config(world["manifest"], tmp_path / "out", model="source", judge="chat", **GEOMETRY)
    results = evaluate(config)

    first, *rest = results["samples"]
    assert first["metrics"]["judge_total"] is None and first["metrics"]["judge_prompt_following"] is None
    assert "no JSON object" in first["judge_error"]
    assert all(s["metrics"]["judge_total"] == 6 and s["judge_error"] is None for s in rest)
    assert results["counts"]["judge_failures"] == 1 and results["counts"]["scored"] == 3
    assert results["aggregates"]["overall"]["metrics"]["judge_total"] == {"mean": 6.0, "n": 2}
    assert "judge failed" in (tmp_path / "out" / "report.html").read_text()


class _CountingPipe:
    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.pipe, name)

    def __call__(self, **kwargs):
        self.calls += 1
        return self.pipe(**kwargs)


def test_resume_skips_scored_samples_and_refuses_other_settings(world, tiny_pipeline_dir, tmp_path):
    from editor.pipeline import VideoEditPipeline

    pipe = _CountingPipe(VideoEditPipeline.from_pretrained(tiny_pipeline_dir))
    config = _config(world["manifest"], tmp_path / "out", model=str(tiny_pipeline_dir), limit=2, steps=1, guidance=1.0)
    first = evaluate(config, pipe=pipe)
    assert pipe.calls == 2 and first["counts"]["resumed"] == 0

    second = evaluate(replace(config, limit=None), pipe=pipe)
    assert pipe.calls == 3 and second["counts"]["resumed"] == 2 and second["counts"]["scored"] == 3
    assert _by_id(second)["world-recolour"] == _by_id(first)["world-recolour"]

    third = evaluate(replace(config, limit=None), pipe=pipe)
    assert pipe.calls == 3 and third["counts"]["resumed"] == 3
    with pytest.raises(ValueError, match="other settings"):
        evaluate(replace(config, steps=2), pipe=pipe)


def test_a_run_recorded_before_precision_was_resolved_resumes_in_the_precision_it_meant(
    world, tiny_pipeline_dir, tmp_path
):
    from editor.pipeline import VideoEditPipeline

    pipe = _CountingPipe(VideoEditPipeline.from_pretrained(tiny_pipeline_dir))
    config = _config(world["manifest"], tmp_path / "out", model=str(tiny_pipeline_dir), limit=1, steps=1, guidance=1.0)
    config = replace(config, device="cpu", precision="fp32")
    evaluate(config, pipe=pipe)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["model"]["precision"] == "fp32"
    run["model"]["precision"] = None  # as older versions wrote it: null meant fp32 on a CPU
    (tmp_path / "out" / "run.json").write_text(json.dumps(run))

    assert evaluate(config, pipe=pipe)["counts"]["resumed"] == 1 and pipe.calls == 1
    (tmp_path / "out" / "run.json").write_text(json.dumps(run))
    # A ready-made pipeline is recorded in its own dtype, whatever the config says.
    bf16 = VideoEditPipeline.from_pretrained(tiny_pipeline_dir, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="other settings"):
        evaluate(config, pipe=bf16)


def test_a_model_retrained_into_the_same_folder_does_not_resume_the_old_samples(world, tiny_pipeline_dir, tmp_path):
    from editor.pipeline import VideoEditPipeline

    model = tmp_path / "model"
    shutil.copytree(tiny_pipeline_dir, model)
    pipe = _CountingPipe(VideoEditPipeline.from_pretrained(model))
    config = _config(world["manifest"], tmp_path / "out", model=str(model), limit=1, steps=1, guidance=1.0)
    evaluate(config, pipe=pipe)
    assert evaluate(config, pipe=pipe)["counts"]["resumed"] == 1

    (weights,) = (model / "transformer").glob("*.safetensors")
    tensors = load_file(weights)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1.0  # what another training run leaves behind: same names and shapes
    save_file(tensors, weights)
    with pytest.raises(ValueError, match="other settings \\(model differ"):
        evaluate(config, pipe=pipe)

    # A folder recorded before the weights were is trusted, as it was then, and recorded with them from now on.
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    del run["model"]["weights"]
    (tmp_path / "out" / "run.json").write_text(json.dumps(run))
    assert evaluate(config, pipe=pipe)["counts"]["resumed"] == 1 and pipe.calls == 1
    assert "weights" in json.loads((tmp_path / "out" / "run.json").read_text())["model"]


def test_the_weights_digest_reads_local_files_and_names_hub_references(tmp_path):
    from training.evaluation.inputs import weights_digest

    first, second = tmp_path / "a" / "transformer", tmp_path / "b" / "transformer"
    for folder in (first, second):
        folder.mkdir(parents=True)
        save_file({"weight": torch.ones(3)}, folder / "model.safetensors")
    assert weights_digest([first]) == weights_digest([second])  # the bytes count, not where they lie
    save_file({"weight": torch.zeros(3)}, second / "model.safetensors")
    assert weights_digest([first]) != weights_digest([second])

    # A hub repository is not read here: its name stands for it, and another name is another model.
    hub = weights_digest([first, "org/base-model"])
    assert hub == weights_digest([first, "org/base-model"]) != weights_digest([first, "org/other-model"])


def test_codec_ceiling_scores_the_ground_truth_through_the_codec(world, tiny_pipeline_dir, tmp_path):
    from editor.pipeline import VideoEditPipeline
    from training.evaluation.inputs import read_clip
    from training.metrics import psnr

    no_truth = {**world["records"][0], "id": "no-truth", "target": None, "mask": None}
    benchmark = _manifest(tmp_path / "bench.jsonl", [*world["records"], no_truth])
    config = _config(benchmark, tmp_path / "out", model=str(tiny_pipeline_dir), codec_ceiling=True, device="cpu",
                     precision="fp32")  # fmt: skip
    results = evaluate(config)

    assert results["model"]["kind"] == "codec_ceiling" and "sampling" not in results["model"]
    assert results["model"]["name"] == f"ground truth through the codec of {tiny_pipeline_dir}"
    assert results["counts"]["dropped"] == {"no ground truth": 1}
    pipe = VideoEditPipeline.from_pretrained(tiny_pipeline_dir)
    geometry = Geometry(resize_mode="crop", **GEOMETRY)
    for record in world["records"]:
        target = read_clip(record["target"], geometry, "target")
        expected = pipe.decode_latents(pipe.encode_video(target, torch.device("cpu")))[0]
        got = _by_id(results)[record["id"]]["metrics"]["psnr"]
        # The tiny pipeline's random VAE loses most of the clip: the ceiling is its round trip, not the target.
        assert got == pytest.approx(min(psnr(expected, target), PSNR_CAP_DB), abs=1e-6)
        assert got < 20
    for values in ({"model": "source"}, {"edits": tmp_path}):
        with pytest.raises(ValueError, match="codec_ceiling"):
            evaluate(replace(config, **values))


def test_missing_clip_is_dropped_and_missing_ground_truth_is_allowed(world, tmp_path):
    good = world["records"][0]
    # Real-footage records: no ground truth, and an instruction the world's verifier cannot parse.
    no_truth = {**world["records"][1], "id": "no-truth", "target": None, "mask": None,
                "instruction": "turn the dog into a cat"}  # fmt: skip
    missing = {**good, "id": "missing", "source": clip(tmp_path / "nowhere.mp4", 0.0, 1.0)}
    benchmark = _manifest(tmp_path / "bench.jsonl", [good, missing, no_truth])
    results = evaluate(_config(benchmark, tmp_path / "out", model="source", **GEOMETRY))

    assert results["counts"]["dropped"] == {"source unreadable": 1}
    assert results["dropped"][0]["id"] == "missing" and "nowhere.mp4" in results["dropped"][0]["detail"]
    assert [s["id"] for s in results["samples"]] == [good["id"], "no-truth"]
    no_gt = _by_id(results)["no-truth"]
    assert "psnr" not in no_gt["metrics"] and no_gt["clean_success"] is None
    assert no_gt["verifier"]["followed"] is None  # no verdict, rather than a failure
    assert results["aggregates"]["overall"]["accuracy"]["of"] == 1
    assert "source unreadable" in (tmp_path / "out" / "results.md").read_text()


def test_subject_consistency_proxy_with_configured_weights(world, tmp_path):
    # Any module:factory builds the backbone; an Identity network has no weights, so an empty file fits it.
    weights = tmp_path / "identity.safetensors"
    save_file({}, str(weights))
    config = _config(world["manifest"], tmp_path / "out", model="source", features_weights=weights,
                     features_backbone="torch.nn:Identity", verify=False, **GEOMETRY)  # fmt: skip
    results = evaluate(config)
    assert "subject_consistency_proxy" not in results["unavailable"]
    assert all(0.0 <= s["metrics"]["subject_consistency_proxy"] <= 1.0 for s in results["samples"])
    assert all(s["verifier"] is None for s in results["samples"])
    assert results["aggregates"]["overall"]["accuracy"]["of"] == 0


def test_clip_text_alignment_with_a_local_clip_folder(world, tmp_path, request):
    clip_folder = request.getfixturevalue("tiny_clip_dir")
    config = _config(world["manifest"], tmp_path / "out", model="source", clip=clip_folder, verify=False, **GEOMETRY)
    results = evaluate(config)
    assert "clip_text_alignment" not in results["unavailable"]
    assert all(-1.0 <= s["metrics"]["clip_text_alignment"] <= 1.0 for s in results["samples"])
    assert "CLIP text alignment" in (tmp_path / "out" / "results.md").read_text()


@pytest.mark.parametrize(
    ("values", "name"),
    [
        ({"frames": 2}, "frames"),
        ({"height": 0}, "height"),
        ({"fps": -1.0}, "fps"),
        ({"resize_mode": "stretch"}, "resize_mode"),
        ({"judge": "oracle"}, "judge"),
        ({"clean_psnr_db": 0}, "clean_psnr_db"),
        ({"strict_psnr_db": 101}, "strict_psnr_db"),
        ({"strict_free_types": "add"}, "strict_free_types"),
        ({"strip_frames": 0}, "strip_frames"),
        ({"limit": 0}, "limit"),
        ({"guidance": 0.5}, "guidance"),
        ({"verify": "yes"}, "verify"),
        ({"features_backbone": "torch.nn:Identity"}, "features_weights"),
        ({"model": None}, "model"),
    ],
)
def test_bad_config_values_raise_value_error_naming_them(world, tmp_path, values, name):
    config = _config(world["manifest"], tmp_path / "out", model="source", **GEOMETRY)
    with pytest.raises(ValueError, match=name):
        evaluate(replace(config, **values))


def test_identity_baseline_needs_a_geometry(world, tmp_path):
    with pytest.raises(ValueError, match="height"):
        evaluate(_config(world["manifest"], tmp_path / "out", model="source"))


def test_benchmark_records_are_validated(world, tmp_path):
    records = read_benchmark(world["manifest"])
    assert [r["id"] for r in records] == [f"world-{kind}" for kind in KINDS]
    minimal = {"id": "a", "source": world["records"][0]["source"], "instruction": "remove the ball"}
    (tmp_path / "minimal.jsonl").write_text(json.dumps(minimal) + "\n")
    assert read_benchmark(tmp_path / "minimal.jsonl")[0]["target"] is None
    for bad, message in (({**minimal, "instruction": " "}, "instruction"), ({**minimal, "colour": 1}, "colour"),
                         ({**minimal, "target": {"path": "x.mp4"}}, "target")):  # fmt: skip
        (tmp_path / "bad.jsonl").write_text(json.dumps(bad) + "\n")
        with pytest.raises(ValueError, match=message):
            read_benchmark(tmp_path / "bad.jsonl")


def test_cli_exit_codes_for_bad_input(world, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["--benchmark", str(tmp_path / "none.jsonl"), "--model", "source", "--output", out]) == 2
    assert main(["--benchmark", str(world["manifest"]), "--model", "source", "--output", out, "frames=x"]) == 2
    assert main(["--benchmark", str(world["manifest"]), "--model", "source", "--output", out, "colour=red"]) == 2
    assert main(["--benchmark", str(world["manifest"]), "--model", str(tmp_path), "--output", out]) == 2
    errors = capsys.readouterr().err
    assert "benchmark not found" in errors and "frames='x'" in errors and "unknown config keys" in errors
    assert "neither 'source', a preset" in errors


def test_world_config_loads():
    config = load_config(EvalConfig, REPO / "configs" / "eval" / "world.yaml")
    assert config.model == "source" and config.judge is not None and config.judge.kind == "world"
    assert (config.height, config.width, config.frames, config.fps) == (SIZE, SIZE, FRAMES, FPS)


def test_an_add_placed_elsewhere_is_clean_and_older_runs_gain_the_edit_region(world, tmp_path):
    from test_world import moved_object

    from training.world import parse_instruction, verify

    # "include a ..." leaves the place open: the object beside where the ground truth put it is a right edit.
    rng = np.random.default_rng(3)
    while True:
        scene = random_scene(rng, num_frames=FRAMES)
        try:
            edit = random_edit(scene, rng, types=("add",), num_frames=FRAMES)
        except ValueError:
            continue
        instruction = instruction_for(edit, scene, rng, num_frames=FRAMES)
        source, target, mask = render_pair(scene, edit, FRAMES, SIZE, SIZE)
        moved = [moved_object(source, target, mask, dx) for dx in (20, -20)]
        moved = [e for e in moved if e is not None and verify(source, e, instruction).followed]
        if parse_instruction(instruction).location is None and moved:
            break
    mask_frames = np.repeat(mask[..., None].astype(np.uint8) * 255, 3, axis=-1)
    files = {name: _write(tmp_path / f"add_{name}.mp4", frames)
             for name, frames in (("source", source), ("target", target), ("mask", mask_frames))}  # fmt: skip
    add = _record("world-add", files["source"], instruction, "add", files["target"], files["mask"])
    recolour = next(r for r in world["records"] if r["id"] == "world-recolour")
    edits = tmp_path / "edits"
    edits.mkdir()
    write_video(edits / "world-add.mp4", moved[0], FPS, lossless=True)
    write_video(edits / "world-recolour.mp4", world["targets"]["world-recolour"], FPS, lossless=True)
    benchmark = _manifest(tmp_path / "bench.jsonl", [add, recolour])
    # Lossless copies of the edits: the metric read back from them must be the one scored.
    config = _config(benchmark, tmp_path / "out", edits=edits, model="moved", lossless_edits=True, **GEOMETRY)
    added = _by_id(evaluate(config))["world-add"]
    assert added["verifier"]["followed"] is True, added["verifier"]["reason"]
    assert added["metrics"]["psnr_outside_mask"] < 25 <= added["metrics"]["psnr_outside_edit"]
    assert added["clean_success"] is True

    # A run scored before the metric existed gains it on resume, from its saved edits, without editing again.
    first = {s["id"]: s["metrics"]["psnr_outside_edit"] for s in evaluate(config)["samples"]}
    for path in (tmp_path / "out" / "samples").glob("*.json"):
        sample = json.loads(path.read_text())
        del sample["metrics"]["psnr_outside_edit"]
        path.write_text(json.dumps(sample))
    resumed = evaluate(config)
    assert resumed["counts"]["resumed"] == 2
    assert {s["id"]: s["metrics"]["psnr_outside_edit"] for s in resumed["samples"]} == pytest.approx(first)
    assert _by_id(resumed)["world-add"]["clean_success"] is True


def test_a_paired_gap_reads_two_models_edit_by_edit():
    from training.evaluation.paired import paired_gap

    first = {"e0": True, "e1": True, "e2": True, "e3": True, "e4": None}
    second = {"e0": True, "e1": True, "e2": False, "e3": False, "e4": True}
    found = paired_gap([first], [second])
    assert found.edits == 4  # e4 has no verdict for the first model
    assert found.gap == pytest.approx(0.5)
    assert found.standard_error == pytest.approx(np.std([0, 0, 1, 1], ddof=1) / 2)
    assert found.seed_gaps == pytest.approx((0.5,))
    # The same outcomes: whatever the rate, no gap and no error, where two independent rates would have one.
    assert paired_gap([first], [first]).standard_error == 0
    # Two seeds are averaged per edit first: the first model's mean outcomes 0.5, 1, 1, 0.5 against 1, 1, 0, 0.
    other_seed = {"e0": False, "e1": True, "e2": True, "e3": False}
    found = paired_gap([first, other_seed], [second, second])
    assert found.gap == pytest.approx(0.25)
    assert found.standard_error == pytest.approx(np.std([-0.5, 0, 1, 0.5], ddof=1) / 2)
    assert found.seed_gaps == pytest.approx((0.5, 0.0))
    with pytest.raises(ValueError, match="as many seeds"):
        paired_gap([first], [first, second])
    assert paired_gap([{"e0": True}], [{"e0": False}]) is None  # one edit has no spread to read
