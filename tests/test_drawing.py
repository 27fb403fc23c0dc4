"""The drawing score of a text-to-video base: samples from captions, compared with the captioned clips."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from training.curation.backends.world import render_world_clip
from training.evaluation.drawing import compare, main
from training.world.captions import write_captioned_clips


def test_a_clip_matches_itself_and_not_another_scene():
    clip, other = render_world_clip(1, 9, 64, 64), render_world_clip(2, 9, 64, 64)
    assert compare(clip, clip) == {"colour": 1.0, "colour_and_shape": 1.0, "background": 1.0}
    assert compare(np.zeros_like(clip), clip)["colour"] == 0.0
    scores = compare(other, clip)
    assert scores["colour_and_shape"] <= scores["colour"] and scores != compare(clip, clip)


def test_cli_scores_samples_of_a_pipeline(tmp_path):
    from tiny_pipeline import save_tiny_pipeline

    model = save_tiny_pipeline(tmp_path / "model")
    captions = write_captioned_clips(tmp_path / "captions", 3, seed=0)
    output = tmp_path / "drawing.json"
    assert main(["--model", str(model), "--captions", str(captions), "--count", "2", "--steps", "2",
                 "--output", str(output), "--strips", str(tmp_path / "strips")]) == 0  # fmt: skip
    results = json.loads(output.read_text())
    assert results["count"] == 2 and [s["id"] for s in results["samples"]] == ["clip00000", "clip00001"]
    strip = cv2.imread(results["samples"][0]["strip"])
    assert strip is not None and strip.shape[0] > 2 * 64  # two rows of frames
    assert all(0.0 <= value <= 1.0 for value in results["means"].values())
    assert main(["--model", str(model), "--captions", str(captions), "--count", "0"]) == 2


@pytest.mark.parametrize("missing", ["model", "captions"])
def test_cli_names_what_is_missing(tmp_path, missing, capsys):
    paths = {"model": tmp_path / "nowhere", "captions": tmp_path / "none.jsonl"}
    if missing == "model":
        paths["captions"] = write_captioned_clips(tmp_path / "captions", 1, seed=0)
    assert main(["--model", str(paths["model"]), "--captions", str(paths["captions"])]) == 2
    assert str(paths[missing]) in capsys.readouterr().err
