"""The app in a real browser (Playwright driving Debian's Chromium): upload, instruct, paint a mask, edit, see it."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
# SwiftShader gives the mask editor's WebGL canvas a GPU; QUIC is of no use on localhost.
CHROMIUM_ARGS = ["--disable-quic", "--use-angle=swiftshader"]
# Copies of the screenshots where a person can look at them after the run.
SHOWN = {"before": Path("/tmp/app_before.png"), "after": Path("/tmp/app_after.png")}
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def app_url(tiny_pipeline_dir):
    import app
    from editor.loading import load_pipeline

    pipe = load_pipeline(tiny_pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    demo = app.build_demo(pipe, model_name=str(tiny_pipeline_dir))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app.serve(demo, host="127.0.0.1", port=port, block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def page(app_url):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.goto(app_url)
        yield page
        browser.close()


def animated_gif(path: Path) -> Path:
    """The first second of an example clip as a 128x128 GIF."""
    from PIL import Image

    from editor.video import read_video

    clip = read_video(REPO / "assets" / "examples" / "wolf.mp4", end=1.0)
    frames = [Image.fromarray(frame).resize((128, 128)) for frame in clip.frames]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    return path


def paint_stroke(page) -> None:
    """Brush a diagonal stroke across the middle of the mask editor's canvas."""
    editor = page.locator("#mask_editor")
    editor.locator("button[aria-label=Brush]").click()
    box = editor.locator("canvas").first.bounding_box()
    x, y = box["x"] + box["width"] / 2 - 60, box["y"] + box["height"] / 2 - 40
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(1, 13):
        page.mouse.move(x + 10 * k, y + 7 * k, steps=2)
    page.mouse.up()


def test_upload_mask_edit_and_see_the_result(page, tmp_path):
    from playwright.sync_api import expect

    has_source = re.compile(r".+")
    # A GIF is accepted too (browsers' video pickers refuse them); then it is swapped for an mp4.
    upload = page.locator("#source input[type=file]")
    upload.set_input_files(str(animated_gif(tmp_path / "wolf.gif")))
    expect(page.locator("#info")).to_contain_text("Source: 128x128, 1.0 s", timeout=TIMEOUT_MS)
    page.locator("#source button[aria-label=Clear]").click()
    upload.set_input_files(str(REPO / "assets" / "examples" / "wolf.mp4"))
    expect(page.locator("#info")).to_contain_text("The model sees 9 frames of 64x64", timeout=TIMEOUT_MS)
    expect(page.locator("#preview img")).to_have_count(8, timeout=TIMEOUT_MS)
    expect(page.locator("#model_view video")).to_have_attribute("src", has_source, timeout=TIMEOUT_MS)
    page.locator("#instruction textarea").fill("Turn the wolf into a red fox.")

    # The editor's background arrives with the preview; a stroke drawn before it would be dropped with the reset.
    editor = page.locator("#mask_editor")
    expect(editor.locator("button[aria-label=Brush]")).to_be_enabled(timeout=TIMEOUT_MS)
    page.wait_for_timeout(1000)
    paint_stroke(page)
    page.locator("#mask_preview_button").click()
    expect(page.locator("#mask_preview video")).to_have_attribute("src", has_source, timeout=TIMEOUT_MS)

    before = tmp_path / "app_before.png"
    page.screenshot(path=str(before), full_page=True)
    page.locator("#run").click()
    for output in ("#edited", "#side_by_side"):
        expect(page.locator(f"{output} video")).to_have_attribute("src", has_source, timeout=2 * TIMEOUT_MS)
    expect(page.locator("#status")).to_contain_text("Edited 9 frames of 64x64", timeout=TIMEOUT_MS)
    expect(page.locator("#status")).to_contain_text("mask static")  # the painted mask reached the edit
    expect(page.locator("#compare img")).to_have_count(2, timeout=TIMEOUT_MS)
    expect(page.locator("#history img")).to_have_count(1, timeout=TIMEOUT_MS)

    # The browser plays both clips: original | edited is twice as wide as the edit.
    sizes = {}
    for output in ("#edited", "#side_by_side"):
        page.wait_for_function(f"document.querySelector('{output} video').readyState >= 1", timeout=TIMEOUT_MS)
        sizes[output] = page.locator(f"{output} video").evaluate("v => [v.videoWidth, v.videoHeight]")
    assert sizes == {"#edited": [64, 64], "#side_by_side": [128, 64]}
    page.wait_for_timeout(500)  # let the players draw their first frame for the screenshot
    after = tmp_path / "app_after.png"
    page.screenshot(path=str(after), full_page=True)

    for shot, copy in zip((before, after), SHOWN.values(), strict=True):
        assert shot.stat().st_size > 10_000
        shutil.copy(shot, copy)

    # The history reopens an edit with the settings it was made with.
    page.locator("#instruction textarea").fill("something else")
    page.locator("#history img").first.click()
    expect(page.locator("#status")).to_contain_text("Reopened: seed 0, 2 steps", timeout=TIMEOUT_MS)
    expect(page.locator("#instruction textarea")).to_have_value("Turn the wolf into a red fox.")
