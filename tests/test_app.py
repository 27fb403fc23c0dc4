"""The web app as a user's script sees it: `python app.py --model DIR` served locally, called with gradio_client."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from editor.loading import LoadOptions
from editor.video import read_video, write_video

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "assets" / "examples" / "wolf.mp4"
INSTRUCTION = "turn the wolf into a red fox"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(url: str, process: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the app exited with code {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the app did not start serving within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def app_url(tiny_pipeline_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("app")
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(folder / "gradio"),
           "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    log = folder / "app.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "app.py"), "--model", str(tiny_pipeline_dir), "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def edit(client, video: Path, **settings):
    from gradio_client import handle_file

    return client.predict(handle_file(str(video)), settings.pop("instruction", INSTRUCTION), api_name="/edit",
                          **settings)  # fmt: skip


def test_edit_api_returns_the_edit_and_the_side_by_side(client):
    result = edit(client, EXAMPLE, seed=1)
    edited, pair = read_video(result[0]).frames, read_video(result[1]).frames
    assert edited.shape == (9, 64, 64, 3)  # the tiny model's 9 frames at 64x64 (the example is square)
    assert pair.shape == (9, 64, 128, 3)  # original | edited
    assert np.abs(pair[:, :, 64:].astype(int) - edited).mean() < 3  # the right half is the edit
    assert "Edited 9 frames" in result[-2]
    # The answer does not grow with the session: the gallery of earlier edits is not part of it.
    returns = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/edit"]["returns"]
    assert len(edit(client, EXAMPLE, seed=2)) == len(result) == len(returns)
    assert "Gallery" not in {r["component"] for r in returns}


def test_masked_edit_through_the_api(client, tmp_path):
    from gradio_client import handle_file

    # The mask is painted on the frame as the app shows it (scaled up to 512x512): the middle half.
    layer = np.zeros((512, 512, 4), np.uint8)
    layer[128:384, 128:384] = (255, 48, 48, 255)
    Image.fromarray(layer).save(tmp_path / "layer.png")
    Image.fromarray(np.zeros((512, 512, 3), np.uint8)).save(tmp_path / "frame.png")
    editor = {"background": handle_file(str(tmp_path / "frame.png")),
              "layers": [handle_file(str(tmp_path / "layer.png"))], "composite": None}  # fmt: skip
    result = edit(client, EXAMPLE, editor=editor, feather=0, propagation="track")
    pair = read_video(result[1]).frames.astype(int)
    source, edited = pair[:, :, :64], pair[:, :, 64:]
    assert np.abs(edited[:, :12] - source[:, :12]).mean() < 3  # outside the mask: the source
    assert np.abs(edited[:, 24:40, 24:40] - source[:, 24:40, 24:40]).mean() > 10  # inside: edited
    assert result[-1] is not None  # the mask overlay video


def test_eight_concurrent_edits_each_get_their_own_output(client):
    jobs = [client.submit(_upload(EXAMPLE), INSTRUCTION, seed=seed, api_name="/edit") for seed in range(8)]
    results = [job.result(timeout=300) for job in jobs]
    assert len({r[0] for r in results}) == 8
    frames = [read_video(r[0]).frames for r in results]
    for i in range(8):
        for j in range(i + 1, 8):
            assert not np.array_equal(frames[i], frames[j]), f"seeds {i} and {j} gave the same edit"
    # Each request got the edit of its own seed, not a neighbour's.
    again = read_video(edit(client, EXAMPLE, seed=5)[0]).frames
    assert np.array_equal(again, frames[5])


def _upload(path: Path):
    from gradio_client import handle_file

    return handle_file(str(path))


def test_bad_uploads_give_clear_messages_and_the_app_keeps_serving(client, tmp_path):
    from gradio_client.exceptions import AppError

    (tmp_path / "empty.mp4").write_bytes(b"")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "still.png")
    shutil.copy(tmp_path / "still.png", tmp_path / "picture.mp4")
    write_video(tmp_path / "one_frame.mp4", np.zeros((1, 32, 32, 3), np.uint8), 8.0)
    write_video(tmp_path / "long.mp4", np.zeros((130, 16, 16, 3), np.uint8), 2.0)  # 65 s
    expected = {
        "empty.mp4": "empty.mp4 is empty (0 bytes)",
        "picture.mp4": "picture.mp4 is a still image (PNG), not a video",
        "one_frame.mp4": "one_frame.mp4 contains a single frame",
        "long.mp4": "long.mp4 is 65.0 s long; the limit is 60 s",
        "still.png": "Please upload a file that is one of these formats",
    }
    for name, message in expected.items():
        with pytest.raises(AppError) as error:
            edit(client, tmp_path / name)
        assert message in str(error.value), name
        assert "Traceback" not in str(error.value)
    with pytest.raises(AppError, match="Write an instruction"):
        edit(client, EXAMPLE, instruction="   ")
    assert read_video(edit(client, EXAMPLE)[0]).frames.shape == (9, 64, 64, 3)


def test_without_a_model_or_the_demo_preset_the_app_says_to_pass_one(monkeypatch, capsys):
    import app

    monkeypatch.delitem(app.PRESETS, app.DEFAULT_MODEL, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        app.main([])
    assert exit_info.value.code == 2
    assert "--model" in capsys.readouterr().err


def test_files_are_served_from_the_examples_folder_only_and_uploads_are_capped(app_url, tmp_path):
    import httpx

    allowed = httpx.get(f"{app_url}gradio_api/file={EXAMPLE}")
    assert allowed.status_code == 200 and allowed.content == EXAMPLE.read_bytes()
    for outside in (REPO / "app.py", Path("/etc/passwd")):
        assert httpx.get(f"{app_url}gradio_api/file={outside}").status_code == 403
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (51 * 2**20))
    with big.open("rb") as upload:
        response = httpx.post(f"{app_url}gradio_api/upload", files={"files": upload}, timeout=60)
    assert response.status_code == 413


class Recorder:
    """Stands in for gr.Progress: keeps every report; can press Cancel at a given denoising step."""

    def __init__(self, studio=None, request=None, cancel_at: int | None = None) -> None:
        self.calls, self.studio, self.request, self.cancel_at = [], studio, request, cancel_at

    def __call__(self, progress, desc=None, unit=None):
        self.calls.append((desc, *progress))
        if self.cancel_at is not None and desc == "Denoising" and progress[0] == self.cancel_at:
            self.studio.cancel(self.request)


@pytest.fixture(scope="module")
def studio(tiny_pipeline_dir, tmp_path_factory):
    import app
    from editor.loading import load_pipeline

    pipe = load_pipeline(tiny_pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    return app.Studio(pipe, "tiny", output_root=tmp_path_factory.mktemp("outputs"))


def test_progress_history_comparison_and_cancel(studio, monkeypatch):
    import gradio as gr

    progress = Recorder()
    outputs = studio.edit(str(EXAMPLE), INSTRUCTION, steps=3, seed=4, progress=progress)
    stages = [desc for desc, *_ in progress.calls]
    assert stages[0].startswith("Encoding") and stages[-1].startswith("Decoding")
    assert [(step, total) for desc, step, total in progress.calls if desc == "Denoising"] == [(1, 3), (2, 3), (3, 3)]

    history, entry = outputs[6], outputs[10]
    assert len(history) == 1 and entry["settings"]["seed"] == 4 and entry["settings"]["steps"] == 3
    left, right = studio.compare_frame(entry, 8)
    assert Path(left).is_file() and Path(right).is_file()
    second = studio.edit(str(EXAMPLE), "make the ball blue", seed=5, history=history, progress=Recorder())
    assert len(second[6]) == 2 and Path(second[0]).parent != Path(outputs[0]).parent  # a folder per request

    # Going back to the first edit brings its outputs and the settings it was made with.
    restored = studio.restore(second[6], type("Select", (), {"index": 0})())
    assert restored[0] == outputs[0] and restored[6] == INSTRUCTION and restored[7] == 3 and restored[9] == 4

    # Cancel stops the pipeline between steps, through its progress callback.
    request = type("Request", (), {"session_hash": "someone"})()
    cancel = Recorder(studio, request, cancel_at=1)
    with pytest.raises(gr.Error, match="cancelled"):
        studio.edit(str(EXAMPLE), INSTRUCTION, steps=4, request=request, progress=cancel)
    assert max(step for desc, step, _ in cancel.calls if desc == "Denoising") == 1


def test_demo_with_lazily_cached_examples_builds(studio):
    import app

    demo = app.build_demo(studio.pipe, model_name="demo", cache_examples=True)
    examples = [block for block in demo.blocks.values() if type(block).__name__ == "Dataset"]
    assert len(examples) == 2  # instructions by edit type, and the example clips


def test_the_demo_model_gets_examples_from_its_own_world():
    import app
    from editor.video import probe_video
    from training.world import parse_instruction

    clips, per_type = app.examples_for("demo")
    assert sorted(per_type) == sorted(["add", "remove", "replace", "recolour", "background", "style"])
    for path, instruction in clips:
        assert path.is_file() and path.resolve().is_relative_to(app.EXAMPLES_DIR)  # served from the allowed folder
        assert probe_video(path).duration == pytest.approx(2.0, abs=0.25)  # what the demo model edits in one go
        assert parse_instruction(instruction) is not None
    real, _ = app.examples_for("path/to/another/model")
    assert all(path.parent == app.EXAMPLES_DIR for path, _ in real)


def test_the_loaded_model_reports_the_memory_plan_auto_chose(tiny_pipeline_dir):
    import app

    pipe, summary = app.load_model(app.build_parser().parse_args(["--model", str(tiny_pipeline_dir)]))
    assert pipe.memory_plan == "none"
    precision = LoadOptions(device="cpu").resolved_precision()  # bf16 or fp32, as this CPU computes
    assert summary == f"{precision} on cpu, memory plan none (chosen by auto), quantization none"
    args = app.build_parser().parse_args(["--model", str(tiny_pipeline_dir), "--precision", "fp16"])
    _, summary = app.load_model(args)
    assert summary.startswith("fp16 on cpu")


def test_the_bundled_model_states_its_benchmark_scores(tmp_path, monkeypatch):
    import json

    import app

    card = tmp_path / app.PRESETS["demo"].bundled / "training.json"
    card.parent.mkdir(parents=True)
    rate = lambda r: {"clean_success": {"rate": r}}  # noqa: E731
    card.write_text(json.dumps({"benchmark": {"by_edit_type": {"add": rate(0.25), "style": rate(0.9)},
                                              "overall": rate(0.5)}}))  # fmt: skip
    monkeypatch.setattr(app, "ROOT", tmp_path)
    assert "(clean success): add 25%, style 90%, all 50%" in app.benchmark_note("demo")
    assert app.benchmark_note(str(tmp_path)) == ""  # a pipeline folder has no bundled card
    rates = lambda clean, strict: {"clean_success": {"rate": clean}, "strict_success": {"rate": strict}}  # noqa: E731
    card.write_text(json.dumps({"benchmark": {"by_edit_type": {"remove": rates(0.4, 0.1)},
                                              "overall": rates(0.4, 0.1)}}))  # fmt: skip
    assert "(strict success): remove 10%, all 10%" in app.benchmark_note("demo")
    assert app.benchmark_note("demo").endswith("(docs/RESULTS.md).")
    (card.parent / "benchmark.md").write_text("# Evaluation\n")  # the page the recipe ships beside the card
    assert app.benchmark_note("demo").endswith(f"({app.PRESETS['demo'].bundled}/benchmark.md, docs/RESULTS.md).")
    card.unlink()
    assert app.benchmark_note("demo") == ""
