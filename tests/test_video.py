"""Tests for editor.video: reading real and synthetic clips, writing mp4s, and the clip-shaping helpers."""

from __future__ import annotations

import logging
import stat
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from editor.video import (
    MAX_DURATION,
    MAX_SIDE,
    VideoClip,
    VideoError,
    conform_clip,
    fit_size,
    frame_count_for,
    probe_video,
    read_video,
    write_video,
)
from editor.video import read as video_read
from editor.video import write as video_write

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"
needs_videos = pytest.mark.skipif(not VIDEOS.is_dir(), reason=f"sample videos not found at {VIDEOS}")

# name: (width, height, fps, frames) as listed in the sample folder's README; all are stored upright.
REAL_CLIPS = {
    "glasses.mp4": (480, 832, 25, 81),
    "kid.mp4": (480, 832, 25, 81),
    "wolf.mp4": (512, 512, 20, 40),
    "hiker.mp4": (720, 480, 8, 49),
    "hiker_tiny.mp4": (368, 240, 8, 49),
    "kitten_portrait.mp4": (512, 768, 25, 25),
    "butterfly_360p.mp4": (640, 360, 16, 66),
    "bikes_scenecuts.mp4": (640, 272, 25, 250),
    "scenecuts_212s.mp4": (160, 90, 25, 5301),
}


def quadrants(height: int = 48, width: int = 64) -> np.ndarray:
    """An image whose four quadrants differ, so any rotation or mirror is visible."""
    image = np.zeros((height, width, 3), np.uint8)
    h, w = height // 2, width // 2
    image[:h, :w] = (255, 0, 0)
    image[:h, w:] = (0, 255, 0)
    image[h:, :w] = (0, 0, 255)
    image[h:, w:] = (255, 255, 255)
    return image


def make_video(
    path: Path,
    *,
    codec: str = "libx264",
    num_frames: int = 6,
    width: int = 64,
    height: int = 48,
    rate: int = 25,
    pix_fmt: str = "yuv420p",
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    rotation: tuple[int, bool, bool] | None = None,
    options: dict[str, str] | None = None,
    levels: list[int] | None = None,
) -> Path:
    """Encode a small synthetic clip; frame ``i`` is flat grey ``levels[i]`` unless ``levels`` is None."""
    with av.open(str(path), mode="w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if time_base is not None:
            stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation[0], hflip=rotation[1], vflip=rotation[2])
        for i in range(num_frames):
            image = quadrants(height, width) if levels is None else np.full((height, width, 3), levels[i], np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i if pts is None else pts[i]
            if time_base is not None:
                frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def make_audio_only(path: Path, codec: str) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=44100, layout="mono")
        fmt = stream.codec_context.format
        dtype = {"s16": np.int16, "s16p": np.int16, "flt": np.float32, "fltp": np.float32}[fmt.name]
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype), format=fmt.name, layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def frame_levels(frames: np.ndarray) -> list[int]:
    """Recover the flat grey level of each frame (lossy coding moves it by a unit or two)."""
    return [round(float(m)) for m in frames.mean(axis=(1, 2, 3))]


# ----------------------------------------------------------------------------------------------- real clips


@needs_videos
@pytest.mark.parametrize("name", sorted(REAL_CLIPS))
def test_real_clips_probe_and_read(name: str) -> None:
    width, height, fps, num_frames = REAL_CLIPS[name]
    info = probe_video(VIDEOS / name)
    assert (info.width, info.height) == (width, height)
    assert info.rotation == 0
    assert info.fps == pytest.approx(fps)
    assert info.num_frames == num_frames
    assert info.codec == "h264"

    clip = read_video(VIDEOS / name, max_frames=9)
    assert clip.frames.shape == (9, height, width, 3)
    assert clip.frames.dtype == np.uint8
    assert clip.fps == pytest.approx(fps)
    assert clip.start == 0.0
    assert clip.source == VIDEOS / name
    assert clip.frames.std() > 1.0  # real pictures, not blank buffers


@needs_videos
def test_fps_resampling_doubles_frames() -> None:
    native = read_video(VIDEOS / "hiker.mp4", end=3.0)
    doubled = read_video(VIDEOS / "hiker.mp4", end=3.0, fps=16)
    assert native.fps == 8 and doubled.fps == 16
    assert len(native.frames) == 24
    assert len(doubled.frames) == 48
    # At twice the rate every source frame appears twice in a row.
    np.testing.assert_array_equal(doubled.frames[0::2], native.frames)
    np.testing.assert_array_equal(doubled.frames[1::2], native.frames)
    assert doubled.duration == pytest.approx(native.duration)


@needs_videos
def test_whole_clip_resampled_covers_last_frame() -> None:
    clip = read_video(VIDEOS / "hiker_tiny.mp4", fps=16)
    assert len(clip.frames) == 98  # 49 frames at 8 fps last 6.125 s


@needs_videos
def test_start_end_trimming_matches_full_read() -> None:
    path = VIDEOS / "bikes_scenecuts.mp4"
    full = read_video(path, end=4.0)
    part = read_video(path, start=2.0, end=3.0)
    assert part.start == pytest.approx(2.0)
    assert len(part.frames) == 25
    # Seeking lands on a keyframe before start; the frames must still be exactly the ones at 2.0 s - 3.0 s.
    np.testing.assert_array_equal(part.frames, full.frames[50:75])

    resampled = read_video(path, start=2.01, end=3.0, fps=10)
    assert resampled.start == pytest.approx(2.01)
    assert len(resampled.frames) == 10
    shown = [int((2.01 + k / 10) * 25) for k in range(10)]  # the 25 fps frame on screen at each target time
    assert shown[:4] == [50, 52, 55, 57]
    np.testing.assert_array_equal(resampled.frames, full.frames[shown])


@needs_videos
def test_long_file_short_read_is_fast() -> None:
    path = VIDEOS / "scenecuts_212s.mp4"
    info = probe_video(path)
    assert info.has_audio
    assert info.duration == pytest.approx(212, abs=1)
    assert (info.width, info.height) == (160, 90)

    t0 = time.perf_counter()
    clip = read_video(path, end=2.0)
    late = read_video(path, start=200.0, end=201.0)
    elapsed = time.perf_counter() - t0
    assert clip.frames.shape == (50, 90, 160, 3)
    assert late.frames.shape == (25, 90, 160, 3)
    assert late.start == pytest.approx(200.0)
    assert elapsed < 5.0


@needs_videos
def test_max_frames_stops_early() -> None:
    clip = read_video(VIDEOS / "scenecuts_212s.mp4", start=30.0, max_frames=17, fps=10)
    assert clip.frames.shape == (17, 90, 160, 3)
    assert clip.duration == pytest.approx(1.7)


# --------------------------------------------------------------------------------------- containers, rotation


@pytest.mark.parametrize(
    ("suffix", "codec", "pix_fmt"),
    [
        (".mp4", "libx264", "yuv420p"),
        (".mov", "libx264", "yuv420p"),
        (".mkv", "libx264", "yuv420p"),
        (".webm", "libvpx", "yuv420p"),
        (".webm", "libvpx-vp9", "yuv420p"),
        (".gif", "gif", "rgb8"),
    ],
)
def test_container_round_trip(tmp_path: Path, suffix: str, codec: str, pix_fmt: str) -> None:
    path = make_video(tmp_path / f"clip{suffix}", codec=codec, pix_fmt=pix_fmt, num_frames=7, levels=None)
    info = probe_video(path)
    assert (info.width, info.height) == (64, 48)
    assert info.fps == pytest.approx(25)
    assert info.num_frames == 7
    clip = read_video(path)
    assert clip.frames.shape == (7, 48, 64, 3)
    # Colours survive (gif's palette and 4:2:0 chroma blur edges, so compare quadrant centres).
    np.testing.assert_allclose(clip.frames[3, 12, 16], (255, 0, 0), atol=40)
    np.testing.assert_allclose(clip.frames[3, 36, 48], (255, 255, 255), atol=40)


def test_write_then_read_mp4(tmp_path: Path) -> None:
    frames = np.stack([np.full((48, 64, 3), level, np.uint8) for level in range(20, 240, 20)])
    frames[:, :24, :32] = (200, 30, 60)
    out = write_video(tmp_path / "out.mp4", frames, 12)
    assert out == tmp_path / "out.mp4"
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == 12
        assert not container.streams.audio
    data = out.read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")  # +faststart: index first, for streaming
    clip = read_video(out)
    assert clip.frames.shape == frames.shape
    assert clip.fps == pytest.approx(12)
    assert np.abs(clip.frames.astype(int) - frames).mean() < 3
    assert list(out.parent.iterdir()) == [out]


def test_write_ntsc_rate_and_odd_size(tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (5, 33, 47, 3), dtype=np.uint8)
    out = write_video(tmp_path / "odd.mp4", frames, 30000 / 1001)
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)
    clip = read_video(out)
    # yuv420p needs even sides: one padding row/column is added at the bottom/right.
    assert clip.frames.shape == (5, 34, 48, 3)


@pytest.mark.skipif(not hasattr(av.VideoStream, "set_display_rotation"), reason="PyAV cannot write display matrices")
@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
@pytest.mark.parametrize(("hflip", "vflip"), [(False, False), (True, False), (False, True)])
def test_rotation_metadata_is_applied(tmp_path: Path, degrees: int, hflip: bool, vflip: bool) -> None:
    path = make_video(tmp_path / "rot.mp4", num_frames=3, rotation=(degrees, hflip, vflip))
    with av.open(str(path)) as container:
        stored = next(container.decode(video=0)).to_ndarray(format="rgb24")
    # PyAV documents set_display_rotation as: turn counter-clockwise by `degrees`, then mirror.
    expected = np.rot90(stored, degrees // 90)
    if hflip:
        expected = expected[:, ::-1]
    if vflip:
        expected = expected[::-1]

    clip = read_video(path)
    np.testing.assert_array_equal(clip.frames[0], expected)
    info = probe_video(path)
    assert (info.height, info.width) == expected.shape[:2]
    if not hflip and not vflip:
        # VideoInfo.rotation is the clockwise turn that makes the picture upright.
        assert info.rotation == (360 - degrees) % 360


def test_orientation_transforms_on_arrays() -> None:
    image = np.arange(6).reshape(2, 3, 1)
    apply = video_read._apply_orientation
    np.testing.assert_array_equal(apply(image, "clock")[..., 0], [[3, 0], [4, 1], [5, 2]])
    np.testing.assert_array_equal(apply(image, "cclock")[..., 0], [[2, 5], [1, 4], [0, 3]])
    np.testing.assert_array_equal(apply(image, "transpose")[..., 0], [[0, 3], [1, 4], [2, 5]])
    np.testing.assert_array_equal(apply(image, "antitranspose")[..., 0], [[5, 2], [4, 1], [3, 0]])
    np.testing.assert_array_equal(apply(image, "rot180")[..., 0], [[5, 4, 3], [2, 1, 0]])
    assert apply(image, "clock").flags.c_contiguous


# -------------------------------------------------------------------------------------------- variable rate


def test_variable_frame_rate_is_resampled_by_timestamp(tmp_path: Path) -> None:
    ms = Fraction(1, 1000)
    levels = [20, 60, 100, 140, 180, 220]
    pts = [0, 40, 200, 210, 500, 1000]
    path = make_video(tmp_path / "vfr.mkv", num_frames=6, width=32, height=32, pts=pts, time_base=ms, levels=levels)
    native = read_video(path)
    assert frame_levels(native.frames) == pytest.approx(levels, abs=3)

    clip = read_video(path, fps=10)
    # Target k / 10 s shows the last frame at or before it: 0.3 s and 0.4 s still show the frame from 0.21 s.
    expected = [20, 60, 100, 140, 140, 180, 180, 180, 180, 180, 220]
    assert frame_levels(clip.frames) == pytest.approx(expected, abs=3)
    assert clip.fps == 10

    trimmed = read_video(path, fps=10, start=0.15, end=0.6)
    assert trimmed.start == pytest.approx(0.15)
    assert frame_levels(trimmed.frames) == pytest.approx([60, 140, 140, 140, 180], abs=3)

    native_trimmed = read_video(path, start=0.15, end=0.6)
    assert native_trimmed.start == pytest.approx(0.04)  # the frame on screen at 0.15 s
    assert frame_levels(native_trimmed.frames) == pytest.approx([60, 100, 140, 180], abs=3)


# -------------------------------------------------------------------------------------------------- audio


@needs_videos
def test_write_with_audio_from_source(tmp_path: Path) -> None:
    source = VIDEOS / "scenecuts_212s.mp4"
    clip = read_video(source, start=10.0, max_frames=49)
    out = write_video(tmp_path / "edited.mp4", clip.frames, clip.fps, audio_from=clip.source, audio_start=clip.start)
    with av.open(str(out)) as container:
        v, a = container.streams.video[0], container.streams.audio[0]
        assert a.codec_context.name == "aac"
        video_seconds = float(v.duration * v.time_base)
        audio_seconds = float(a.duration * a.time_base)
    assert video_seconds == pytest.approx(49 / 25)
    assert audio_seconds == pytest.approx(video_seconds, abs=0.1)
    assert len(read_video(out).frames) == 49


@needs_videos
def test_audio_is_cut_at_audio_start(tmp_path: Path) -> None:
    source = VIDEOS / "scenecuts_212s.mp4"
    seconds = 1.0
    expected = video_write._load_audio(source, 10.0, seconds)
    assert expected is not None and expected.samples.shape == (2, round(seconds * expected.rate))
    # The same stretch decoded independently, without seeking: 10 s .. 11 s of the track.
    with av.open(str(source)) as container:
        chunks = [f.to_ndarray() for f in container.decode(audio=0) if f.time < 12.0]
    track = np.concatenate(chunks, axis=1)

    def correlation(shift: float) -> float:
        first = round((10.0 + shift) * expected.rate)
        reference = track[:, first : first + expected.samples.shape[1]]
        return float(np.corrcoef(expected.samples.ravel(), reference.ravel())[0, 1])

    # AAC noise substitution makes decodes after a seek differ slightly, so compare by correlation: it is
    # near 1 at the right offset and collapses 10 ms either side.
    assert correlation(0.0) > 0.95
    assert abs(correlation(0.01)) < 0.5 and abs(correlation(-0.01)) < 0.5


def test_audio_from_silent_source_gives_silent_video(tmp_path: Path) -> None:
    source = make_video(tmp_path / "silent.mp4")
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    out = write_video(tmp_path / "out.mp4", frames, 8, audio_from=source)
    with av.open(str(out)) as container:
        assert not container.streams.audio


def test_audio_from_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="not found"):
        write_video(tmp_path / "out.mp4", np.zeros((2, 16, 16, 3), np.uint8), 8, audio_from=tmp_path / "gone.mp4")
    assert list(tmp_path.iterdir()) == []


def test_audio_from_audio_only_file(tmp_path: Path) -> None:
    source = make_audio_only(tmp_path / "voice.wav", "pcm_s16le")
    out = write_video(tmp_path / "out.mp4", np.zeros((10, 32, 32, 3), np.uint8), 10, audio_from=source)
    with av.open(str(out)) as container:
        a = container.streams.audio[0]
        assert float(a.duration * a.time_base) == pytest.approx(1.0, abs=0.1)


# ------------------------------------------------------------------------------------------- atomic writes


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((3, 32, 32, 3), np.float32),
        np.zeros((32, 32, 3), np.uint8),
        np.zeros((3, 32, 32, 4), np.uint8),
        np.zeros((0, 32, 32, 3), np.uint8),
    ],
    ids=["float", "3d", "rgba", "empty"],
)
def test_write_rejects_bad_frames_without_leaving_files(tmp_path: Path, frames: np.ndarray) -> None:
    with pytest.raises(ValueError, match="frames"):
        write_video(tmp_path / "bad.mp4", frames, 10)
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_bad_fps(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="fps"):
        write_video(tmp_path / "bad.mp4", np.zeros((2, 16, 16, 3), np.uint8), 0)
    assert list(tmp_path.iterdir()) == []


def test_written_clip_has_the_usual_permissions(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("plain")
    out = write_video(tmp_path / "out.mp4", np.zeros((2, 16, 16, 3), np.uint8), 10)
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)


def test_failed_write_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.mp4"
    target.write_bytes(b"previous version")
    source = make_audio_only(tmp_path / "voice.m4a", "aac")

    def explode(*args: object, **kwargs: object) -> int:
        raise RuntimeError("disk full")

    # Fail half-way: the container is open and video packets are already written.
    monkeypatch.setattr(video_write, "_encode_audio", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        write_video(target, np.zeros((4, 32, 32, 3), np.uint8), 8, audio_from=source)
    assert target.read_bytes() == b"previous version"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "voice.m4a"]


# --------------------------------------------------------------------------------------------- bad inputs


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="not found") as err:
        read_video(tmp_path / "nope.mp4")
    assert "nope.mp4" in str(err.value)


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").touch()
    with pytest.raises(VideoError, match=r"empty \(0 bytes\)"):
        probe_video(tmp_path / "empty.mp4")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="directory"):
        read_video(tmp_path)


@needs_videos
def test_truncated_file_without_index(tmp_path: Path) -> None:
    # The sample mp4s keep their index at the end, so the first half has none: nothing can be decoded.
    data = (VIDEOS / "glasses.mp4").read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="truncated") as err:
        read_video(path)
    assert "half.mp4" in str(err.value)


def test_truncated_file_with_index_returns_decodable_frames(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    full = tmp_path / "full.mp4"
    noise = np.random.default_rng(1)
    # Noisy frames make packets similar in size, so cutting the file in half cuts the frame count in half.
    with av.open(str(full), mode="w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(40):
            frame = av.VideoFrame.from_ndarray(noise.integers(0, 256, (48, 64, 3), dtype=np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    data = full.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="editor.video"):
        clip = read_video(path)
    assert 2 <= len(clip.frames) < 40
    assert clip.frames.shape[1:] == (48, 64, 3)
    assert "truncated" in caplog.text


def test_file_with_no_decodable_frames(tmp_path: Path) -> None:
    full = make_video(tmp_path / "full.mp4", num_frames=3, options={"movflags": "+faststart"})
    data = full.read_bytes()
    # Keep the index but cut inside the very first packet.
    path = tmp_path / "stub.mp4"
    path.write_bytes(data[: data.find(b"mdat") + 64])
    with pytest.raises(VideoError, match="no decodable video frames"):
        read_video(path)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.txt", b"this is a text file\nnot a video\n" * 50),
        ("notes.mp4", b"this is a text file\nnot a video\n" * 50),
        ("noise.mp4", np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()),
        ("noise.bin", np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()),
    ],
)
def test_not_a_video(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(VideoError, match="not a video") as err:
        read_video(path)
    assert name in str(err.value)


@pytest.mark.parametrize(("name", "codec"), [("voice.m4a", "aac"), ("voice.wav", "pcm_s16le")])
def test_audio_only_file(tmp_path: Path, name: str, codec: str) -> None:
    path = make_audio_only(tmp_path / name, codec)
    with pytest.raises(VideoError, match="audio-only") as err:
        probe_video(path)
    assert name in str(err.value)
    with pytest.raises(VideoError, match="no video stream"):
        read_video(path)


@pytest.mark.parametrize(("name", "codec", "pix_fmt"), [("one.mp4", "libx264", "yuv420p"), ("one.gif", "gif", "rgb8")])
def test_single_frame_video(tmp_path: Path, name: str, codec: str, pix_fmt: str) -> None:
    path = make_video(tmp_path / name, codec=codec, pix_fmt=pix_fmt, num_frames=1)
    assert probe_video(path).num_frames == 1
    with pytest.raises(VideoError, match="single frame; a video clip needs at least 2 frames") as err:
        read_video(path)
    assert name in str(err.value)
    assert frame_count_for(1) == 1


def test_range_holding_one_frame(tmp_path: Path) -> None:
    path = make_video(tmp_path / "clip.mp4", num_frames=6)
    with pytest.raises(VideoError, match="only 1 frame"):
        read_video(path, start=0.2)
    assert read_video(path, max_frames=1).frames.shape == (1, 48, 64, 3)  # explicitly asked for one


def test_oversized_frames(tmp_path: Path) -> None:
    path = make_video(tmp_path / "wide.mkv", width=MAX_SIDE + 16, height=16, num_frames=2)
    with pytest.raises(VideoError, match=f"{MAX_SIDE + 16}x16") as err:
        probe_video(path)
    assert "wide.mkv" in str(err.value)
    with pytest.raises(VideoError, match=str(MAX_SIDE)):
        read_video(path)


def test_too_long_needs_trimming(tmp_path: Path) -> None:
    # Three frames spread over 700 s: long in time, tiny on disk.
    path = make_video(tmp_path / "long.mkv", width=32, height=32, num_frames=3, rate=1, pts=[0, 350, 700])
    assert probe_video(path).duration > MAX_DURATION
    with pytest.raises(VideoError, match="trim it with start/end") as err:
        read_video(path)
    assert "long.mkv" in str(err.value)
    with pytest.raises(VideoError, match="exceeds"):
        read_video(path, start=0, end=650)
    clip = read_video(path, start=300, end=400)
    assert len(clip.frames) == 2
    assert clip.start == pytest.approx(0)  # the frame on screen at 300 s was shown from 0 s


def test_bad_start_end(tmp_path: Path) -> None:
    path = make_video(tmp_path / "clip.mp4", num_frames=6)  # 0.24 s
    with pytest.raises(VideoError, match=r"start \(5\.0 s\) is at or past the end") as err:
        read_video(path, start=5.0)
    assert "clip.mp4" in str(err.value)
    with pytest.raises(VideoError, match=r"end \(0\.1 s\) must be greater than start \(0\.2 s\)"):
        read_video(path, start=0.2, end=0.1)
    with pytest.raises(VideoError, match="start must be >= 0"):
        read_video(path, start=-1)
    with pytest.raises(VideoError, match="fps must be a positive"):
        read_video(path, fps=0)
    with pytest.raises(VideoError, match="max_frames"):
        read_video(path, max_frames=0)


def test_video_error_is_value_error() -> None:
    assert issubclass(VideoError, ValueError)


# ------------------------------------------------------------------------------------------- model helpers


def test_frame_count_for() -> None:
    assert [frame_count_for(n) for n in (1, 2, 4, 5, 8, 9, 81, 83)] == [1, 1, 1, 5, 5, 9, 81, 81]
    assert frame_count_for(10, temporal_multiple=8) == 9
    assert frame_count_for(7, temporal_multiple=1) == 7
    with pytest.raises(VideoError, match="at least 1 frame"):
        frame_count_for(0)


def test_fit_size() -> None:
    assert fit_size(832, 480, target_area=832 * 480) == (832, 480)
    h, w = fit_size(90, 160, target_area=512 * 512)
    assert h % 16 == 0 and w % 16 == 0
    assert w / h == pytest.approx(160 / 90, rel=0.05)
    assert h * w == pytest.approx(512 * 512, rel=0.1)
    assert fit_size(10, 10_000, target_area=64 * 64, multiple=16)[0] == 16  # never below one multiple
    assert fit_size(480, 720, target_area=480 * 720, multiple=8) == (480, 720)
    with pytest.raises(VideoError):
        fit_size(0, 10, target_area=100)


def test_conform_clip_crop() -> None:
    frames = np.zeros((10, 90, 160, 3), np.uint8)
    frames[:, :, 60:100] = 255  # a centred white band, 40 of 160 columns
    out = conform_clip(frames, num_frames=9, height=64, width=64)
    assert out.shape == (9, 64, 64, 3) and out.dtype == np.uint8
    # Covering 64x64 scales by 64/90; the band (~28 px wide) stays centred and the sides are cropped away.
    band = out[0, 32, :, 0] > 127
    assert 26 <= band.sum() <= 30
    assert band[32] and not band[0] and not band[-1]


def test_conform_clip_pad() -> None:
    frames = np.full((5, 90, 160, 3), 200, np.uint8)
    out = conform_clip(frames, num_frames=5, height=128, width=128, resize_mode="pad")
    assert out.shape == (5, 128, 128, 3)
    content = np.argwhere(out[0, :, :, 0] > 100)
    rows = content[:, 0].max() - content[:, 0].min() + 1
    cols = content[:, 1].max() - content[:, 1].min() + 1
    assert (rows, cols) == (72, 128)  # 160x90 fitted into 128 wide keeps its aspect
    assert cols / rows == pytest.approx(160 / 90, rel=0.02)
    assert (out[0, :28] == 0).all() and (out[0, -28:] == 0).all()  # black bars top and bottom
    assert (out[0, 28:100] == 200).all()


def test_conform_clip_upscale_and_errors() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 20, 30, 3), dtype=np.uint8)
    assert conform_clip(frames, num_frames=3, height=64, width=96).shape == (3, 64, 96, 3)
    with pytest.raises(VideoError, match="3 frames but 4 are needed"):
        conform_clip(frames, num_frames=4, height=64, width=64)
    with pytest.raises(ValueError, match="'stretch'"):
        conform_clip(frames, num_frames=3, height=64, width=64, resize_mode="stretch")


def test_video_clip_duration() -> None:
    clip = VideoClip(frames=np.zeros((10, 4, 4, 3), np.uint8), fps=5.0, start=1.0, source=None)
    assert clip.duration == pytest.approx(2.0)


def test_lossless_writing_reads_back_bit_for_bit(tmp_path: Path) -> None:
    frames = np.random.default_rng(3).integers(0, 256, size=(5, 24, 40, 3), dtype=np.uint8)
    path = write_video(tmp_path / "exact.mp4", frames, 8.0, lossless=True)
    assert np.array_equal(read_video(path).frames, frames)
