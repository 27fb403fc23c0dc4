"""`python -m editor edit` on every real clip, with a tiny random pipeline loaded from disk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_pipeline import TINY_DEFAULTS

from editor.cli import EXIT_BAD_INPUT, EXIT_MODEL, main
from editor.video import fit_size, frame_count_for, probe_video, read_video

REPO = Path(__file__).resolve().parents[1]
CLIPS = [
    "glasses.mp4",
    "kid.mp4",
    "wolf.mp4",
    "hiker.mp4",
    "hiker_tiny.mp4",
    "kitten_portrait.mp4",
    "butterfly_360p.mp4",
    "bikes_scenecuts.mp4",
    "scenecuts_212s.mp4",
]


def audio_duration(path: Path) -> float | None:
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.codec_context.sample_rate


@pytest.mark.parametrize("name", CLIPS)
def test_edits_every_clip(name, shared_videos, tiny_pipeline_dir, tmp_path):
    source = shared_videos / name
    out = tmp_path / "edit.mp4"
    code = main(["edit", str(source), "-i", "make it a snowy winter scene", "-o", str(out),
                 "--model", str(tiny_pipeline_dir), "--seed", "3"])  # fmt: skip
    assert code == 0

    info = probe_video(source)
    seconds_at_model_fps = int(info.duration * TINY_DEFAULTS.fps)
    expected_frames = min(frame_count_for(seconds_at_model_fps), TINY_DEFAULTS.num_frames)
    area = TINY_DEFAULTS.height * TINY_DEFAULTS.width
    expected_size = fit_size(info.height, info.width, target_area=area, multiple=16)

    edited = read_video(out)
    assert edited.frames.shape == (expected_frames, *expected_size, 3)
    assert edited.fps == pytest.approx(TINY_DEFAULTS.fps, rel=1e-3)
    if info.has_audio:
        assert audio_duration(out) == pytest.approx(expected_frames / TINY_DEFAULTS.fps, abs=0.1)
    else:
        assert audio_duration(out) is None


def test_same_seed_same_output_and_side_by_side(shared_videos, tiny_pipeline_dir, tmp_path):
    args = ["edit", str(shared_videos / "wolf.mp4"), "-i", "turn the wolf into a red fox",
            "--model", str(tiny_pipeline_dir), "--frames", "5", "--height", "32", "--width", "48"]  # fmt: skip
    assert main([*args, "--seed", "7", "-o", str(tmp_path / "a.mp4"), "--side-by-side", str(tmp_path / "ab.mp4")]) == 0
    assert main([*args, "--seed", "7", "-o", str(tmp_path / "b.mp4")]) == 0
    assert main([*args, "--seed", "8", "-o", str(tmp_path / "c.mp4")]) == 0
    a, b, c = (read_video(tmp_path / f"{n}.mp4").frames for n in "abc")
    assert a.shape == (5, 32, 48, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert read_video(tmp_path / "ab.mp4").frames.shape == (5, 32, 96, 3)


def test_trimmed_clip_keeps_matching_audio(shared_videos, tiny_pipeline_dir, tmp_path):
    out = tmp_path / "trim.mp4"
    code = main(["edit", str(shared_videos / "scenecuts_212s.mp4"), "-i", "make the ball blue", "-o", str(out),
                 "--model", str(tiny_pipeline_dir), "--start", "100", "--end", "101.2"])  # fmt: skip
    assert code == 0
    frames = read_video(out).frames
    assert len(frames) == 9  # 1.2 s at 8 fps = 9 frames = 4 * 2 + 1
    assert audio_duration(out) == pytest.approx(9 / 8, abs=0.1)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "not found"), (b"", "empty"), (b"just some notes, not a video", "not a video")],
)
def test_bad_input_exits_nonzero_with_one_line(content, message, tiny_pipeline_dir, tmp_path, capsys):
    path = tmp_path / "input.mp4"
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "o.mp4"
    code = main(["edit", str(path), "-i", "make it blue", "-o", str(out), "--model", str(tiny_pipeline_dir)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "o.mp4").exists()


def test_bad_settings_and_model(shared_videos, tiny_pipeline_dir, tmp_path, capsys):
    clip = str(shared_videos / "hiker_tiny.mp4")
    out = str(tmp_path / "o.mp4")
    assert main(["edit", clip, "-i", "x y", "-o", out, "--model", str(tiny_pipeline_dir), "--frames", "8"]) == 2
    assert "num_frames=8" in capsys.readouterr().err
    assert main(["edit", clip, "-i", "x y", "-o", out, "--model", str(tmp_path)]) == EXIT_MODEL
    assert "neither a preset" in capsys.readouterr().err
    assert main(["edit", clip, "-i", "x y", "-o", str(tmp_path / "o.avi"), "--model", str(tiny_pipeline_dir)]) == 2


def test_process_exit_code_and_no_traceback(tmp_path, tiny_pipeline_dir):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    result = subprocess.run(
        [sys.executable, "-m", "editor", "edit", str(bad), "-i", "make it blue", "-o", str(tmp_path / "o.mp4"),
         "--model", str(tiny_pipeline_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == EXIT_BAD_INPUT
    assert "Traceback" not in result.stderr
    assert "error: " in result.stderr and "broken.mp4" in result.stderr


def test_convert_command_writes_a_loadable_diffusers_folder(golden_dir, tmp_path):
    from editor.transformer import ICVETransformer3DModel

    out = tmp_path / "icve-diffusers"
    code = main(["convert", str(golden_dir / "original_weights.safetensors"), "--config",
                 str(golden_dir / "original_config.json"), "-o", str(out)])  # fmt: skip
    assert code == 0
    model = ICVETransformer3DModel.from_pretrained(out)
    assert model.config.num_layers == 2 and model.config.attention_head_dim == 16
    assert main(["convert", str(tmp_path / "missing.safetensors"), "-o", str(tmp_path / "x")]) == EXIT_BAD_INPUT
    assert not (tmp_path / "x").exists()


def test_assemble_writes_a_pipeline_folder_from_a_hunyuan_base(icve_sources, tmp_path):
    """Pretraining starts from HunyuanVideo's own text-to-video transformer, assembled with its VAE and encoders."""
    from editor.pipeline import VideoEditPipeline
    from editor.transformer import ICVETransformer3DModel

    base, _ = icve_sources
    output = tmp_path / "hunyuan-icve"
    assert main(["assemble", "--base", str(base), "--transformer", str(base / "transformer"), "-o", str(output)]) == 0
    pipe = VideoEditPipeline.from_pretrained(output)
    assert isinstance(pipe.transformer, ICVETransformer3DModel)
    assert pipe.text_encoder.config.template == "{}"
    assert main(["assemble", "--base", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x")]) == 3
