"""The latent/text cache: shard contents match the pipeline, reruns resume, corruption is caught, the CLI works."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_pipeline import pair_record

from editor.pipeline import VideoEditPipeline
from editor.video import conform_clip, read_video, write_video
from training.cache import CacheConfig, CachedDataset, CacheError, build_cache, main
from training.curation.manifest import clip, write_jsonl

INSTRUCTIONS = ["make the ball blue", "remove the flower vase", "replace the dog with a cat"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from tiny_pipeline import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("cache_model") / "model")


@pytest.fixture(scope="module")
def pipe(model_dir: Path) -> VideoEditPipeline:
    return VideoEditPipeline.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """Three usable pairs (12 frames, 48x64, 8 fps), one whose source file does not exist, one too short."""
    root = tmp_path_factory.mktemp("cache_data")
    rng = np.random.default_rng(0)
    records = []
    for number, instruction in enumerate(INSTRUCTIONS):
        paths = []
        for side in ("source", "target"):
            frames = rng.integers(0, 256, size=(12, 48, 64, 3), dtype=np.uint8)
            paths.append(write_video(root / f"{number}_{side}.mp4", frames, 8.0))
        records.append(pair_record(f"pair-{number}", paths[0], paths[1], instruction))
    records.append(pair_record("pair-missing", root / "missing.mp4", paths[1], "make it a snowy winter scene"))
    short = pair_record("pair-short", paths[0], paths[1], "make the ball blue")
    short["source"] = clip(paths[0], 0.0, 0.75)  # 6 frames at 8 fps, fewer than the 9 asked for
    records.append(short)
    return write_jsonl(root / "manifest.jsonl", records)


def _config(manifest: Path, model: Path, output: Path, **overrides) -> CacheConfig:
    settings = dict(manifest=manifest, model=model, output=output, frames=9, height=64, width=64, device="cpu")
    settings.update(overrides)
    return CacheConfig(**settings)


def test_cache_matches_pipeline_and_resumes(tmp_path, manifest, model_dir, pipe, monkeypatch):
    config = _config(manifest, model_dir, tmp_path / "cache", shard_size=2)
    index = build_cache(config, pipe)

    assert index.num_samples == 3
    assert [len(shard.ids) for shard in index.shards] == [2, 1]
    assert index.skipped == {"too short": 1, "unreadable": 1}
    on_disk = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert on_disk["skipped"] == {"too short": 1, "unreadable": 1}
    assert on_disk["settings"]["frames"] == 9 and on_disk["samples"] == 3
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "empty_prompt.safetensors",
        "index.json",
        "shard-00000.safetensors",
        "shard-00001.safetensors",
    ]

    dataset = CachedDataset(tmp_path / "cache")
    assert len(dataset) == 3
    assert dataset.ids == ["pair-0", "pair-1", "pair-2"]
    sample = dataset[2]
    assert sample["id"] == "pair-2"

    # The cached sample is exactly what the pipeline makes of the conformed clip.
    record = json.loads(manifest.read_text().splitlines()[2])
    frames = read_video(record["source"]["path"], fps=8.0, start=0.0, end=1.5, max_frames=9).frames
    expected = pipe.encode_video(conform_clip(frames, num_frames=9, height=64, width=64), torch.device("cpu"))
    assert sample["source_latents"].shape == expected.shape[1:]
    torch.testing.assert_close(sample["source_latents"], expected[0])
    embeds = pipe.encode_prompt([INSTRUCTIONS[2]], torch.device("cpu"), torch.float32)
    torch.testing.assert_close(sample["text_states"], embeds.states[0])
    assert sample["text_mask"].dtype == torch.int64 and sample["text_mask"].shape == embeds.mask.shape[1:]
    assert sample["text_pooled"].shape == embeds.pooled.shape[1:]
    assert sample["target_latents"].shape == sample["source_latents"].shape
    assert all(sample[k].dtype == torch.float32 for k in ("source_latents", "target_latents", "text_pooled"))

    empty = dataset.empty_prompt()
    reference = pipe.encode_prompt([""], torch.device("cpu"), torch.float32)
    torch.testing.assert_close(empty["text_states"], reference.states[0])
    assert empty["text_mask"].shape == sample["text_mask"].shape

    # A rerun over the finished cache encodes nothing and keeps the shards.
    calls = []
    original = VideoEditPipeline.encode_video
    monkeypatch.setattr(VideoEditPipeline, "encode_video", lambda self, *a: calls.append(1) or original(self, *a))
    again = build_cache(config, pipe)
    assert calls == [] and again.num_samples == 3 and again.shards == index.shards
    assert again.skipped == {"too short": 1, "unreadable": 1}

    with pytest.raises(ValueError, match=r"other settings.*frames.*another output folder"):
        build_cache(_config(manifest, model_dir, tmp_path / "cache", frames=13), pipe)


def test_resume_after_partial_run(tmp_path, manifest, model_dir, pipe, monkeypatch):
    config = _config(manifest, model_dir, tmp_path / "cache", shard_size=2)
    original = VideoEditPipeline.encode_video
    calls = []

    def dies_after_first_shard(self, frames, device):
        if len(calls) == 4:  # two samples, source and target each
            raise KeyboardInterrupt
        calls.append(1)
        return original(self, frames, device)

    monkeypatch.setattr(VideoEditPipeline, "encode_video", dies_after_first_shard)
    with pytest.raises(KeyboardInterrupt):
        build_cache(config, pipe)
    assert len(CachedDataset(tmp_path / "cache")) == 2
    assert not list((tmp_path / "cache").glob(".*"))  # no temporary files left behind

    monkeypatch.setattr(VideoEditPipeline, "encode_video", original)
    index = build_cache(config, pipe)
    assert [shard.ids for shard in index.shards] == [["pair-0", "pair-1"], ["pair-2"]]


def test_corrupt_shard_is_named(tmp_path, manifest, model_dir, pipe):
    build_cache(_config(manifest, model_dir, tmp_path / "cache", shard_size=2), pipe)
    shard = tmp_path / "cache" / "shard-00001.safetensors"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF
    shard.write_bytes(bytes(data))

    dataset = CachedDataset(tmp_path / "cache")
    assert dataset[0]["id"] == "pair-0"  # the intact shard still reads
    with pytest.raises(CacheError, match=r"corrupt shard .*shard-00001\.safetensors: checksum mismatch"):
        dataset[2]

    shard.write_bytes(bytes(data[:100]))  # truncated
    with pytest.raises(CacheError, match="shard-00001"):
        CachedDataset(tmp_path / "cache")[2]


def test_cli(tmp_path, manifest, model_dir, capsys):
    output = tmp_path / "cache"
    config = tmp_path / "cache.yaml"
    config.write_text(f"manifest: {manifest}\nframes: 9\nheight: 64\nwidth: 64\n")
    code = main(["--config", str(config), f"model={model_dir}", f"output={output}", "device=cpu", "shard_size=2"])
    assert code == 0
    assert "3 samples in 2 shards" in capsys.readouterr().out
    assert len(CachedDataset(output)) == 3

    assert main([f"manifest={tmp_path / 'nope.jsonl'}", f"model={model_dir}", f"output={output}"]) == 2
    assert "manifest not found" in capsys.readouterr().err
    assert main([f"manifest={manifest}", "frames=zero", f"output={tmp_path / 'other'}", f"model={model_dir}"]) == 2
    assert main(["colour=red"]) == 2


def test_subset_is_a_fixed_random_choice(tmp_path, manifest, model_dir, pipe):
    build_cache(_config(manifest, model_dir, tmp_path / "cache", shard_size=2), pipe)
    whole = CachedDataset(tmp_path / "cache")
    part = CachedDataset(tmp_path / "cache", subset=2, subset_seed=1)
    assert len(whole) == 3 and len(part) == 2 and set(part.ids) < set(whole.ids)
    assert part[1]["id"] == part.ids[1]
    assert CachedDataset(tmp_path / "cache", subset=2, subset_seed=1).ids == part.ids
    assert {tuple(CachedDataset(tmp_path / "cache", subset=1, subset_seed=s).ids) for s in range(20)} == {
        (i,) for i in whole.ids
    }  # every sample can be chosen
    with pytest.raises(ValueError, match="subset=99"):
        CachedDataset(tmp_path / "cache", subset=99)


def test_captioned_clips_cache_without_sources_and_are_not_mixed_with_pairs(tmp_path, model_dir, pipe):
    rng = np.random.default_rng(1)
    records = []
    for number, text in enumerate(["a red circle over a plain background", "a blue star over a striped background"]):
        path = write_video(tmp_path / f"clip{number}.mp4", rng.integers(0, 256, (12, 64, 64, 3), dtype=np.uint8), 8.0)
        records.append({**pair_record(f"clip-{number}", path, path, text), "source": None})
    captions = write_jsonl(tmp_path / "captions.jsonl", records)
    build_cache(_config(captions, model_dir, tmp_path / "cache"), pipe)

    dataset = CachedDataset(tmp_path / "cache")
    assert not dataset.paired and len(dataset) == 2
    sample = dataset[1]
    assert "source_latents" not in sample
    frames = conform_clip(read_video(tmp_path / "clip1.mp4", fps=8.0).frames, num_frames=9, height=64, width=64)
    torch.testing.assert_close(sample["target_latents"], pipe.encode_video(frames, torch.device("cpu"))[0])

    pairs = [pair_record("pair-0", tmp_path / "clip0.mp4", tmp_path / "clip1.mp4", "make the ball blue")]
    mixed = write_jsonl(tmp_path / "mixed.jsonl", pairs + records)
    with pytest.raises(ValueError, match=r"mixes pairs and captioned clips.*clip-0"):
        build_cache(_config(mixed, model_dir, tmp_path / "mixed-cache"), pipe)
