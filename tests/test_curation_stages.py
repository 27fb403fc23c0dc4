"""Both curation stages end to end: real clips and procedural raw videos (stage 1), the world (stage 2)."""

from __future__ import annotations

import functools
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from editor.video import read_video, write_video
from training.config import load_config
from training.curate import main as curate
from training.curation import stage1, stage2
from training.curation.backends.base import BackendReplyError
from training.curation.manifest import clip, read_manifest, write_jsonl
from training.curation.pipeline import run_pipeline, run_stages
from training.world import verify, write_raw_videos

REPO = Path(__file__).resolve().parents[1]


def run_stage1(input_dir: Path, output: Path, *overrides: str):
    config = load_config(stage1.Stage1Config, None, [f"input={input_dir}", f"output={output}", *overrides])
    return run_pipeline(
        stage1.find_videos(input_dir), stage1.STAGES, stage1.GLOBAL_STAGES,
        make_context=functools.partial(stage1.make_context, config), work_dir=output / "work",
        manifest=output / "manifest.jsonl", progress=False,
    )  # fmt: skip


def run_stage2(output: Path, *overrides: str):
    config = load_config(stage2.Stage2Config, None, [f"output={output}", *overrides])
    return run_pipeline(
        stage2.find_units(config), stage2.STAGES, stage2.GLOBAL_STAGES,
        make_context=functools.partial(stage2.make_context, config), work_dir=output / "work",
        manifest=output / "manifest.jsonl", progress=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def raw_folder(tmp_path_factory, shared_videos) -> Path:
    folder = tmp_path_factory.mktemp("raw")
    write_raw_videos(folder / "world", 2, seed=7, duration=20, fps=12, size=96)
    shutil.copy(shared_videos / "bikes_scenecuts.mp4", folder)
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    (folder / "still.mp4").write_bytes(b"")
    return folder


def test_stage1_finds_cuts_and_mines_pairs(raw_folder, tmp_path):
    result = run_stage1(raw_folder, tmp_path / "out")
    assert result.ledger.balanced()
    counts = result.ledger.to_dict()
    assert counts["basic_filter"]["dropped"] == {"unreadable video": 2}
    # The bikes clip has hard cuts near 3.1, 5.5, 7.6 and 9.7 s.
    cuts = result.notes["bikes_scenecuts.mp4"][0]["cuts"]
    assert len(cuts) >= 3 and any(abs(c - 5.5) < 0.3 for c in cuts) and any(abs(c - 7.6) < 0.3 for c in cuts)
    # World videos: detected cuts match the ground truth to one analysis frame.
    import json

    for truth_file in sorted((raw_folder / "world").glob("*.truth.json")):
        truth = json.loads(truth_file.read_text())
        expected = [frame / truth["fps"] for frame in truth["cuts"]]
        found = result.notes[f"world/{truth_file.name.replace('.truth.json', '.mp4')}"][0]["cuts"]
        assert len(found) == len(expected)
        assert np.allclose(found, expected, atol=0.1)
    pairs = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert pairs, "stage 1 produced no pairs"
    for pair in pairs:
        assert pair["source"]["path"] == pair["target"]["path"]  # two clips of one video
        assert pair["source"]["end"] - pair["source"]["start"] == pytest.approx(9 / 8)
        assert pair["instruction"] and pair["edit_type"]


def test_stage1_cli_with_an_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert curate(["stage1", f"input={tmp_path / 'empty'}", f"output={tmp_path / 'out'}", "--no-progress"]) == 0
    assert read_manifest(tmp_path / "out" / "manifest.jsonl") == []
    assert "Ledger" in (tmp_path / "out" / "report.md").read_text()
    assert curate(["stage1", f"output={tmp_path / 'out'}"]) == 2
    assert curate(["stage1", "colour=red"]) == 2
    assert "unknown config keys" in capsys.readouterr().err


def test_stage2_pairs_follow_their_instructions(tmp_path):
    result = run_stage2(tmp_path / "out", "count=16")
    assert result.ledger.balanced()
    pairs = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert len(pairs) >= 12
    assert {p["edit_type"] for p in pairs} >= {"remove", "add"}
    followed = 0
    for pair in pairs:
        source, target = read_video(pair["source"]["path"]).frames, read_video(pair["target"]["path"]).frames
        mask = read_video(pair["mask"]["path"]).frames[..., 0] > 127
        assert source.shape == target.shape == (9, 64, 64, 3) and mask.shape == source.shape[:3]
        followed += verify(source, target, pair["instruction"]).followed
        assert pair["scores"]["judge_total"] >= 6
    assert followed >= 0.9 * len(pairs)


def test_stage2_can_ask_for_upright_replacements(tmp_path):
    from training.curation.backends.world import WorldInpainter

    assert WorldInpainter._edit("an upright cyan star", 1).upright
    assert not WorldInpainter._edit("a cyan star", 1).upright
    result = run_stage2(
        tmp_path / "out", "count=12", "upright_replacements=true", "edit_type_proportions={replace: 1}"
    )
    replaced = [r for r in result.records if r["edit_type"] == "replace"]
    assert replaced and all(r["provenance"]["caption"].startswith("an upright ") for r in replaced)
    for pair in replaced:
        source, target = read_video(pair["source"]["path"]).frames, read_video(pair["target"]["path"]).frames
        assert verify(source, target, pair["instruction"]).followed, pair["instruction"]


def test_stage2_words_each_pair_its_own_way_unless_told_not_to(tmp_path):
    from training.world import parse_instruction

    varied = {r["id"]: r for r in run_stage2(tmp_path / "varied", "count=12").records}
    plain = {r["id"]: r for r in run_stage2(tmp_path / "plain", "count=12", "vary_instructions=false").records}
    assert varied.keys() == plain.keys() and len(varied) >= 8
    for key, pair in varied.items():
        assert parse_instruction(pair["instruction"]) == parse_instruction(plain[key]["instruction"])
    # The plain describer says each edit one way: its verb names the edit type.
    assert all(plain[k]["instruction"].split()[0] in ("remove", "add", "make", "replace") for k in plain)
    assert len({r["instruction"].split()[0].lower() for r in varied.values()}) >= 4
    again = {r["id"]: r["instruction"] for r in run_stage2(tmp_path / "again", "count=12").records}
    assert again == {k: r["instruction"] for k, r in varied.items()}


def test_stage2_replacements_take_new_colours_as_the_worlds_own_do():
    from training.curation.backends.world import WorldDescriber, WorldSegmenter, render_world_clip
    from training.world import REPLACEMENT_KEEPS_COLOUR, parse_instruction

    frames = render_world_clip(3, 9, 64, 64)
    label = WorldSegmenter().segment(frames)[0].label
    old = parse_instruction(f"remove the {label}")
    proposals = [WorldDescriber().propose_edit(frames, label, "replace", seed) for seed in range(200)]
    new = [parse_instruction(f"replace the {label} with {caption}") for caption in proposals]
    assert all(n.new_shape not in (None, old.shape) for n in new)
    kept = np.mean([n.new_colour == old.colour for n in new])
    assert abs(kept - REPLACEMENT_KEEPS_COLOUR) < 0.1, kept


def test_stage2_rebalances_and_merges_external_pairs(tmp_path):
    external = tmp_path / "external.jsonl"
    write_jsonl(external, [{
        "id": f"public{i}", "source": clip("a.mp4", 0, 1), "target": clip("b.mp4", 0, 1),
        "instruction": "make it look like night", "edit_type": "style", "mask": None, "scores": {},
        "provenance": {}, "stages": {},
    } for i in range(3)])  # fmt: skip
    result = run_stage2(
        tmp_path / "out", "count=16", f"external_manifest={external}",
        "edit_type_proportions={remove: 1, add: 1, style: 1}",
    )  # fmt: skip
    counts = {t: sum(p["edit_type"] == t for p in result.records) for t in ("remove", "add", "style", "replace")}
    assert counts["style"] == 3 and counts["replace"] == 0
    assert counts["remove"] == counts["add"] == 3
    assert result.ledger.to_dict()["rebalance"]["dropped"]["re-balanced away"] > 0
    assert result.ledger.balanced()


def test_bad_backend_replies_and_empty_masks_are_dropped_with_reasons(tmp_path):
    config = load_config(stage2.Stage2Config, None, [f"output={tmp_path}", "count=1"])
    context = stage2.Stage2Context(config)

    class Garbled:
        def __getattr__(self, name):
            def reply(*args, **kwargs):
                raise BackendReplyError("model said: ¯\\_(ツ)_/¯")

            return reply

    context.describer = Garbled()
    records, ledger, _ = run_stages(stage2.find_units(config)[0], stage2.STAGES, context)
    assert records == []
    assert ledger.to_dict()["caption_generation"]["dropped"] == {"error: BackendReplyError": 1}

    empty = tmp_path / "mask.mp4"
    write_video(empty, np.zeros((9, 64, 64, 3), np.uint8), 8.0)
    with pytest.raises(stage2.Drop, match="mask empty"):
        stage2.mask_filter({"id": "x", "mask": clip(empty, 0, 9 / 8), "scores": {}}, context)


def test_killed_run_resumes_to_the_same_manifest(tmp_path):
    command = [sys.executable, "-m", "training.curate", "stage2", "count=24", "--no-progress"]
    subprocess.run([*command, f"output={tmp_path / 'clean'}"], cwd=REPO, check=True, capture_output=True)

    killed = subprocess.Popen([*command, f"output={tmp_path / 'killed'}"], cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    units = tmp_path / "killed" / "work" / "units"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(units.glob("*.json"))) < 5:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    done = len(list(units.glob("*.json")))
    assert 0 < done < 24, "the run should be killed part-way"
    assert not (tmp_path / "killed" / "manifest.jsonl").exists()

    subprocess.run([*command, f"output={tmp_path / 'killed'}"], cwd=REPO, check=True, capture_output=True)
    clean = (tmp_path / "clean" / "manifest.jsonl").read_text().replace(str(tmp_path / "clean"), "OUT")
    resumed = (tmp_path / "killed" / "manifest.jsonl").read_text().replace(str(tmp_path / "killed"), "OUT")
    assert resumed == clean


def test_unfinished_hidden_writes_are_not_inputs(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / ".b.1234.partial.mp4").write_bytes(b"x")
    assert [u["id"] for u in stage1.find_videos(tmp_path)] == ["a.mp4"]
