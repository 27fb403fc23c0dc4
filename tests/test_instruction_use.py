"""What a model reads of its instruction: denoising errors with and without each text path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_pipeline import pair_record

from editor.convert import load_transformer
from editor.video import write_video
from training.cache import CacheConfig, build_cache
from training.curation.manifest import read_jsonl, write_jsonl
from training.evaluation.instruction_use import group_of, main, measure

INSTRUCTIONS = ["make the ball blue", "make it look faded", "give it a warm sunset glow", "remove the red square"]
EDIT_TYPES = ["recolour", "style", "style", "remove"]


@pytest.fixture(scope="module")
def model_and_cache(tmp_path_factory) -> tuple[Path, Path]:
    from tiny_pipeline import save_tiny_pipeline

    root = tmp_path_factory.mktemp("instruction_use")
    model = save_tiny_pipeline(root / "model")
    rng = np.random.default_rng(0)
    records = []
    for number, (instruction, edit_type) in enumerate(zip(INSTRUCTIONS, EDIT_TYPES, strict=True)):
        source = rng.integers(0, 256, (12, 64, 64, 3), dtype=np.uint8)
        target = source.copy()
        target[:, 16:32, 16:32] = 255 - target[:, 16:32, 16:32]
        clips = (("source", source), ("target", target))
        paths = [write_video(root / f"{number}_{side}.mp4", clip, 8.0) for side, clip in clips]
        records.append({**pair_record(f"pair-{number}", paths[0], paths[1], instruction), "edit_type": edit_type})
    manifest = write_jsonl(root / "manifest.jsonl", records)
    cache = root / "cache"
    build_cache(CacheConfig(manifest=manifest, model=model, output=cache, frames=9, device="cpu"))
    return model, cache


def test_style_edits_are_grouped_by_the_style_named():
    assert group_of({"edit_type": "style", "instruction": "Make it look like an old faded film"}) == "style:faded"
    assert group_of({"edit_type": "style", "instruction": "make it nighttime"}) == "style:night"
    assert group_of({"edit_type": "style", "instruction": "undo the colour filter"}) == "style:undo"
    assert group_of({"edit_type": "recolour", "instruction": "make the ball blue"}) == "recolour"


def test_a_model_blind_to_the_pooled_vector_reads_only_tokens(model_and_cache):
    model, cache = model_and_cache
    records = {record["id"]: record for record in read_jsonl(cache.parent / "manifest.jsonl")}
    transformer = load_transformer(model / "transformer").eval()
    results = measure(transformer, cache, records, per_group=4, sigmas=[0.5, 1.0])
    assert sorted(results["groups"]) == ["recolour", "remove", "style:faded", "style:sunset"]
    pair = results["pairs"][0]["errors"]
    assert pair["instruction"] != pair["empty"]  # a random model's output depends on both paths

    # With the pooled projection's input weights zeroed, the pooled vector cannot change anything.
    with torch.no_grad():
        transformer.time_text_embed.text_embedder.linear_1.weight.zero_()
    blind = measure(transformer, cache, records, per_group=4, sigmas=[0.5, 1.0])
    for pair in blind["pairs"]:
        errors = pair["errors"]
        assert errors["pooled_only"] == errors["empty"] and errors["tokens_only"] == errors["instruction"]
        assert errors["tokens_only"] != errors["empty"]


def test_cli_writes_the_table_and_names_bad_sigmas(model_and_cache, tmp_path, capsys):
    model, cache = model_and_cache
    output = tmp_path / "use.json"
    assert main(["--model", str(model), "--cache", str(cache), "--per-group", "1", "--sigmas", "1.0",
                 "--output", str(output)]) == 0  # fmt: skip
    results = json.loads(output.read_text())
    assert {entry["pairs"] for entry in results["groups"].values()} == {1}
    assert "| style:faded | 1 |" in capsys.readouterr().out
    assert main(["--model", str(model), "--cache", str(cache), "--sigmas", "0.0"]) == 2
    assert "--sigmas [0.0]" in capsys.readouterr().err
