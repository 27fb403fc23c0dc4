"""Edit masks: propagation (static and flow-tracked), feathering, masked edits that keep the source outside."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from tiny_pipeline import build_tiny_pipeline

from editor.cli import EXIT_BAD_INPUT, main
from editor.masks import (
    MaskError,
    feather_mask,
    latent_mask,
    load_mask,
    mask_from_image,
    overlay_mask,
    prepare_mask,
    propagate_mask,
)
from editor.pipeline import VideoEditPipeline
from editor.video import read_video, write_video

INSTRUCTION = "make the ball blue"


@pytest.fixture(scope="module")
def pipe() -> VideoEditPipeline:
    pipe = build_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def moving_square(frames: int = 9, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A textured square gliding right and down over a textured background, and where it truly is."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(0, 128, (size, size, 3), dtype=np.uint8), (5, 5), 0)
    texture = cv2.GaussianBlur(rng.integers(128, 256, (16, 16, 3), dtype=np.uint8), (3, 3), 0)
    clip, truth = [], []
    for t in range(frames):
        frame, where = background.copy(), np.zeros((size, size), bool)
        y, x = 20 + t, 8 + 4 * t
        frame[y : y + 16, x : x + 16] = texture
        where[y : y + 16, x : x + 16] = True
        clip.append(frame)
        truth.append(where)
    return np.stack(clip), np.stack(truth)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_static_mask_stays_and_tracked_mask_follows_the_square():
    clip, truth = moving_square()
    static = propagate_mask(truth[0], clip, mode="static")
    assert static.shape == truth.shape and all(np.array_equal(m, truth[0]) for m in static)
    tracked = propagate_mask(truth[0], clip, mode="track")
    assert min(iou(tracked[t], truth[t]) for t in range(len(clip))) > 0.85
    assert iou(static[-1], truth[-1]) < 0.1  # the square has moved away from where it was drawn
    # Drawn on a middle frame, the mask is tracked backwards as well as forwards.
    middle = propagate_mask(truth[4], clip, frame=4, mode="track")
    assert iou(middle[0], truth[0]) > 0.85 and iou(middle[-1], truth[-1]) > 0.85


def test_feathering_is_inside_the_mask_only():
    mask = np.zeros((1, 40, 40), bool)
    mask[0, 10:30, 10:30] = True
    soft = feather_mask(mask, 5)
    assert soft.dtype == np.float32 and soft.shape == mask.shape
    assert soft[~mask].max() == 0.0  # outside: exactly the source
    assert soft[0, 20, 20] == 1.0  # deep inside: fully edited
    edge_to_centre = soft[0, 20, 10:21]
    assert 0 < edge_to_centre[0] < 0.5 and np.all(np.diff(edge_to_centre) >= 0)
    assert np.array_equal(feather_mask(mask, 0), mask.astype(np.float32))
    with pytest.raises(ValueError, match="feather"):
        feather_mask(mask, -1)


def test_latent_mask_covers_every_cell_a_masked_pixel_falls_in():
    mask = np.zeros((9, 16, 16), bool)
    mask[5, 9, 3] = True  # frame 5 is in latent frame 2 (frames 5-8); pixel (9, 3) in cell (1, 0)
    grid = latent_mask(mask, spatial_ratio=8, temporal_ratio=4)
    assert grid.shape == (3, 2, 2)
    assert grid.sum() == 1 and grid[2, 1, 0] == 1


def test_masked_edit_keeps_the_source_outside_exactly(pipe):
    rng = np.random.default_rng(1)
    clip = rng.integers(0, 256, size=(9, 64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[16:40, 8:40] = True
    out = pipe(clip, INSTRUCTION, mask=mask, mask_feather=4, generator=torch.Generator().manual_seed(0))
    edited = out.frames[0]
    assert np.array_equal(edited[:, ~mask], clip[:, ~mask])
    assert np.abs(edited[:, mask].astype(int) - clip[:, mask]).mean() > 10  # the inside was edited
    assert out.mask.shape == (9, 64, 64) and out.mask[:, ~mask].max() == 0.0

    # Latent output: outside the (latent) mask the latents are the clean source latents.
    latents = pipe(clip, INSTRUCTION, mask=mask, output_type="latent", guidance_scale=1.0).frames
    source = pipe.encode_video(clip, torch.device("cpu"))
    outside = torch.from_numpy(latent_mask(np.repeat(mask[None], 9, 0), 8, 4)) == 0
    assert torch.allclose(latents[0][:, outside], source[0][:, outside], atol=1e-5)


def test_masked_edit_from_a_file_of_another_size_through_mp4(pipe, shared_videos, tmp_path):
    # The mask is drawn on the source at its own size (368x240); the model sees the clip at 80x48.
    white = np.zeros((240, 368), np.uint8)
    white[60:180, 92:276] = 255
    Image.fromarray(white).save(tmp_path / "mask.png")
    out = pipe(shared_videos / "hiker_tiny.mp4", INSTRUCTION, mask=tmp_path / "mask.png", mask_feather=2,
               guidance_scale=1.0, generator=torch.Generator().manual_seed(0))  # fmt: skip
    source, edited = out.source_frames, out.frames[0]
    inside = out.mask > 0
    assert inside.shape == source.shape[:3]
    assert 0.2 < inside.mean() < 0.6  # the middle half of the picture, resized like the video
    assert np.array_equal(edited[~inside], source[~inside])

    write_video(tmp_path / "edit.mp4", edited, out.fps)
    write_video(tmp_path / "source.mp4", source, out.fps)
    edited_back, source_back = (read_video(tmp_path / f"{n}.mp4").frames.astype(int) for n in ("edit", "source"))
    # Away from the edge (where the codec's blocks mix both sides), outside matches within codec tolerance.
    far = ~cv2.dilate(inside.astype(np.uint8).max(0), np.ones((9, 9), np.uint8)).astype(bool)
    assert np.abs(edited_back[:, far] - source_back[:, far]).mean() < 2.0
    assert np.abs(edited_back[:, inside.all(0)] - source_back[:, inside.all(0)]).mean() > 10


def test_mask_video_gives_one_mask_per_frame(shared_videos, tmp_path):
    frames = np.zeros((12, 48, 64, 3), np.uint8)
    for t in range(12):
        frames[t, 8:24, 4 * t : 4 * t + 16] = 255
    write_video(tmp_path / "mask.mp4", frames, 8.0)
    mask = load_mask(tmp_path / "mask.mp4", fps=8.0)
    assert mask.shape == (12, 48, 64) and mask.dtype == bool
    clip = np.zeros((9, 48, 64, 3), np.uint8)
    binary, _ = prepare_mask(mask, clip)
    assert binary.shape == (9, 48, 64)
    assert not np.array_equal(binary[0], binary[8])  # each frame its own mask, not the first one repeated
    with pytest.raises(ValueError, match="5 frames but the clip has 9"):
        prepare_mask(mask[:5], clip)


def test_mask_images_read_by_alpha_or_colour():
    layer = np.zeros((8, 8, 4), np.uint8)
    layer[2:4, 2:4] = (255, 0, 0, 255)  # a red brush stroke on a transparent layer
    assert mask_from_image(layer).sum() == 4
    assert mask_from_image(np.full((8, 8, 4), 255, np.uint8)).all()  # all painted, no transparency
    assert mask_from_image(np.eye(8, dtype=np.uint8)).sum() == 8  # a 0/1 array is a mask already
    tinted = overlay_mask(np.zeros((1, 8, 8, 3), np.uint8), np.eye(8, dtype=bool)[None])
    assert tinted[0, 0, 0, 0] > 0 and tinted[0, 0, 1].max() == 0


def test_bad_masks_fail_clearly(pipe, tmp_path):
    clip = np.zeros((9, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="mask is empty"):
        pipe(clip, INSTRUCTION, mask=np.zeros((64, 64), bool), num_inference_steps=1)
    (tmp_path / "notes.png").write_text("this is not an image at all\n" * 20)
    with pytest.raises(MaskError, match="neither an image nor a video"):
        load_mask(tmp_path / "notes.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(MaskError, match="empty"):
        load_mask(tmp_path / "empty.png")
    with pytest.raises(ValueError, match="mask_propagation='wobble'"):
        pipe(clip, INSTRUCTION, mask=np.ones((64, 64), bool), mask_propagation="wobble")
    with pytest.raises(ValueError, match="mask frame 12 is outside"):
        pipe(clip, INSTRUCTION, mask=np.ones((64, 64), bool), mask_frame=12, mask_propagation="track")


def test_cli_mask(shared_videos, tiny_pipeline_dir, tmp_path):
    mask = np.zeros((512, 512), np.uint8)
    mask[128:384, 128:384] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    args = ["edit", str(shared_videos / "wolf.mp4"), "-i", "turn the wolf into a red fox", "--model",
            str(tiny_pipeline_dir), "--frames", "5", "--guidance", "1"]  # fmt: skip
    out = tmp_path / "out.mp4"
    pair = tmp_path / "pair.mp4"
    code = main([*args, "-o", str(out), "--mask", str(tmp_path / "mask.png"), "--mask-propagation", "track",
                 "--mask-feather", "0", "--side-by-side", str(pair)])  # fmt: skip
    assert code == 0
    edited, both = read_video(out).frames.astype(int), read_video(pair).frames.astype(int)
    source = both[:, :, : edited.shape[2]]
    # 512x512 -> 64x64: the mask is the middle 32x32; the border ring is kept (within codec tolerance).
    assert np.abs(edited[:, :8] - source[:, :8]).mean() < 2.0
    assert np.abs(edited[:, 24:40, 24:40] - source[:, 24:40, 24:40]).mean() > 10

    (tmp_path / "mask.txt").write_text("nope")
    assert main([*args, "-o", str(out), "--mask", str(tmp_path / "mask.txt")]) == EXIT_BAD_INPUT
    assert main([*args, "-o", str(out), "--mask", str(tmp_path / "missing.png")]) == EXIT_BAD_INPUT
