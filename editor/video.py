"""Video input and output for the editor, built on PyAV.

Reading turns any container/codec FFmpeg decodes (mp4, mov, mkv, webm, gif, ...) into an ``F x H x W x 3``
``uint8`` RGB array: frames are picked by presentation timestamp, so variable frame rate sources and fps
resampling behave, and the display-matrix rotation that phones write is applied so frames come out upright.
Writing produces a browser-friendly H.264/yuv420p mp4 (``+faststart``), optionally carrying the audio of the
source clip re-encoded as AAC and trimmed to stay in sync with the edited frames.

Helpers at the bottom shape clips for a model: :func:`frame_count_for` (``k * m + 1`` frame counts),
:func:`fit_size` (aspect-preserving size on a pixel grid) and :func:`conform_clip` (trim and crop or pad).

Every problem with the caller's input raises :class:`VideoError` (a ``ValueError``) whose message names the
file and what is wrong with it; raw PyAV exceptions never escape.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.sidedata.sidedata
import cv2
import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_DURATION",
    "MAX_SIDE",
    "VideoClip",
    "VideoError",
    "VideoInfo",
    "conform_clip",
    "fit_size",
    "frame_count_for",
    "probe_video",
    "read_video",
    "write_video",
]

MAX_SIDE = 8192
MAX_DURATION = 600.0

# Timestamps are floats derived from rational time bases; this absorbs rounding without ever being close to
# a real frame interval (the fastest common rates are ~240 fps, i.e. ~4 ms).
_TIME_EPS = 1e-4

# FFmpeg happily "decodes" text files (.txt, .bin, ...) as rendered ANSI/ASCII art; those are never videos.
_TEXT_ART_FORMATS = frozenset({"tty", "bin", "xbin", "adf", "idf"})
_TEXT_ART_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})

# A run of this many undecodable packets with nothing decoded in between means the rest of the file is garbage.
_MAX_CONSECUTIVE_DECODE_ERRORS = 32

# Sample rates the AAC encoder accepts; anything else is resampled to 48 kHz.
_AAC_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000})

_X264_OPTIONS = {"crf": "18", "preset": "medium"}
# AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic value for BT.709, and AVCOL_RANGE_MPEG.
_BT709 = 1
_RANGE_MPEG = 1


class VideoError(ValueError):
    """A video file or argument cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learned about a file.

    ``width``/``height`` are the display size, i.e. after ``rotation`` is applied. ``rotation`` is the clockwise
    rotation, in degrees, that turns the stored frames upright (the convention of the legacy ``rotate`` tag and
    of the ffmpeg command line's autorotation). ``num_frames`` is read from the container header when present,
    otherwise estimated from duration and fps.
    """

    path: Path
    width: int
    height: int
    fps: float
    duration: float
    num_frames: int
    rotation: int
    has_audio: bool
    codec: str


@dataclass
class VideoClip:
    """Decoded frames (``F x H x W x 3`` uint8 RGB) and where they came from.

    ``start`` is the time, in seconds from the start of the source file, that ``frames[0]`` shows; together
    with ``fps`` it lets :func:`write_video` cut the matching stretch of the source's audio.
    """

    frames: np.ndarray
    fps: float
    start: float = 0.0
    source: Path | None = None

    @property
    def duration(self) -> float:
        return len(self.frames) / self.fps if self.fps > 0 else 0.0

    @property
    def num_frames(self) -> int:
        return len(self.frames)


# --------------------------------------------------------------------------------------------------- opening


def _check_file(path: Path, what: str = "video") -> None:
    if not path.exists():
        raise VideoError(f"{what} file not found: {path}")
    if path.is_dir():
        raise VideoError(f"{path} is a directory, not a {what} file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path} is empty (0 bytes), not a {what} file")


def _open_input(path: Path, what: str = "video") -> av.container.InputContainer:
    _check_file(path, what)
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        raise VideoError(
            f"cannot read {path}: FFmpeg could not open it ({_av_reason(exc)}); the file is not a video, "
            "is corrupt, or is truncated"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise VideoError(f"cannot read {path}: {exc}") from exc


def _av_reason(exc: BaseException) -> str:
    # PyAV messages look like "[Errno 1094995529] Invalid data found when processing input: 'file'"; the
    # errno and the repeated file name add nothing for a reader.
    reason = getattr(exc, "strerror", None) or str(exc)
    return str(reason).strip()


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    fmt_names = set(container.format.name.split(","))
    streams = [s for s in container.streams.video if s.codec_context is not None]
    if fmt_names & _TEXT_ART_FORMATS or any(s.codec_context.name in _TEXT_ART_CODECS for s in streams):
        raise VideoError(f"{path} is a text file, not a video")
    if not streams:
        if container.streams.audio:
            raise VideoError(f"{path} is an audio-only file: it has no video stream")
        raise VideoError(f"{path} has no video stream")
    return streams[0]


def _time_origin(container: av.container.InputContainer) -> float:
    # All times (video frames, audio samples, start/end arguments) are measured from the container's start so
    # that audio cut with the same numbers stays in sync with the frames.
    start = container.start_time
    return start / av.time_base if start is not None else 0.0


def _check_size(path: Path, width: int, height: int) -> None:
    if width > MAX_SIDE or height > MAX_SIDE:
        raise VideoError(f"{path} is {width}x{height} pixels; sides larger than {MAX_SIDE} pixels are not supported")
    if width < 1 or height < 1:
        raise VideoError(f"{path} has an invalid frame size {width}x{height}")


# -------------------------------------------------------------------------------------------------- decoding


@dataclass
class _DecodeStats:
    errors: int = 0
    last_error: str = ""
    frames: int = 0
    header_frames: int = 0
    reached_eof: bool = False
    first_error_logged: bool = field(default=False, repr=False)


def _iter_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    path: Path,
    stats: _DecodeStats,
    origin: float,
    fallback_dt: float,
) -> Iterator[tuple[float, av.VideoFrame]]:
    """Yield ``(time in seconds from origin, frame)`` in presentation order.

    Packets are decoded one by one rather than through ``container.decode`` so that one damaged packet (or the
    ragged end of a truncated file) costs that packet, not the whole read.
    """
    time_base = stream.time_base
    last_t: float | None = None
    consecutive_errors = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            stats.reached_eof = True
            return
        except av.FFmpegError as exc:
            # The demuxer cannot go on (typically the file ends mid-packet); what was decoded stays valid.
            stats.errors += 1
            stats.last_error = _av_reason(exc)
            stats.reached_eof = True
            return
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            stats.errors += 1
            stats.last_error = _av_reason(exc)
            consecutive_errors += 1
            if not stats.first_error_logged:
                stats.first_error_logged = True
                logger.warning("%s: skipping undecodable data (%s)", path, stats.last_error)
            if consecutive_errors >= _MAX_CONSECUTIVE_DECODE_ERRORS:
                stats.reached_eof = True
                return
            continue
        for frame in frames:
            consecutive_errors = 0
            pts = frame.pts if frame.pts is not None else frame.dts
            if pts is not None and time_base is not None:
                t = float(pts * time_base) - origin
            else:
                # Without timestamps the best guess is a constant rate after the previous frame.
                t = 0.0 if last_t is None else last_t + fallback_dt
            last_t = t
            stats.frames += 1
            yield t, frame


def _display_matrix(frame: av.VideoFrame) -> np.ndarray | None:
    for side_data in frame.side_data:
        if side_data.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
            raw = bytes(side_data)
            if len(raw) >= 36:
                return np.frombuffer(raw[:36], dtype=np.int32)
    return None


def _orientation(frame: av.VideoFrame) -> tuple[int, str]:
    """Return ``(clockwise degrees, transform name)`` that makes ``frame`` upright.

    Mirrors the ffmpeg command line's autorotation: ``VideoFrame.rotation`` is the counter-clockwise angle the
    display matrix applies, the upright picture needs the opposite (clockwise) turn, and the sign of individual
    matrix entries tells a plain rotation from a rotation combined with a mirror.
    """
    matrix = _display_matrix(frame)
    if matrix is None:
        return 0, "none"
    theta = -float(frame.rotation)
    theta -= 360.0 * math.floor(theta / 360.0 + 0.9 / 360.0)
    if abs(theta - 90.0) < 1.0:
        return 90, "transpose" if matrix[3] > 0 else "clock"
    if abs(theta - 180.0) < 1.0:
        hflip, vflip = matrix[0] < 0, matrix[4] < 0
        name = {(True, True): "rot180", (True, False): "hflip", (False, True): "vflip"}.get((hflip, vflip), "none")
        return 180, name
    if abs(theta - 270.0) < 1.0:
        return 270, "antitranspose" if matrix[3] < 0 else "cclock"
    if abs(theta) < 1.0 or abs(theta - 360.0) < 1.0:
        return 0, "vflip" if matrix[4] < 0 else "none"
    logger.warning("rotation of %.1f degrees is not a multiple of 90; frames are left as stored", theta)
    return 0, "none"


def _apply_orientation(image: np.ndarray, transform: str) -> np.ndarray:
    """Apply a transform named by :func:`_orientation` to an ``H x W x C`` image."""
    if transform == "none":
        return image
    if transform == "clock":
        out = np.rot90(image, -1)
    elif transform == "cclock":
        out = np.rot90(image, 1)
    elif transform == "rot180":
        out = image[::-1, ::-1]
    elif transform == "hflip":
        out = image[:, ::-1]
    elif transform == "vflip":
        out = image[::-1]
    elif transform == "transpose":
        out = image.swapaxes(0, 1)
    elif transform == "antitranspose":
        out = np.rot90(image, -1)[::-1]
    else:
        raise ValueError(f"unknown orientation transform {transform!r}")
    return np.ascontiguousarray(out)


def _stream_fps(stream: av.video.stream.VideoStream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            value = float(rate)
            # Some muxers store a nonsense base rate (e.g. 90000 for mpegts); never trust such values.
            if 0.0 < value <= 1000.0:
                return value
    return None


# ---------------------------------------------------------------------------------------------------- probing


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Describe a video file without decoding more than its first two frames.

    Raises :class:`VideoError` for a missing, empty, unreadable, text, audio-only or oversized
    (side > :data:`MAX_SIDE`) file, or one without a single decodable frame.
    """
    path = Path(path)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        ctx = stream.codec_context
        # Check the header's size before decoding anything, so an absurd frame is never allocated.
        if ctx.width and ctx.height:
            _check_size(path, ctx.width, ctx.height)
        stream.thread_type = "AUTO"
        origin = _time_origin(container)
        fps = _stream_fps(stream)
        stats = _DecodeStats()
        first: av.VideoFrame | None = None
        decoded = 0
        for _, frame in _iter_frames(container, stream, path, stats, origin, 1.0 / (fps or 25.0)):
            if first is None:
                first = frame
            decoded += 1
            if decoded >= 2:
                break
        if first is None:
            reason = f" ({stats.last_error})" if stats.last_error else ""
            raise VideoError(f"{path} has no decodable video frames{reason}; the file may be truncated or corrupt")
        _check_size(path, first.width, first.height)
        rotation, _ = _orientation(first)
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width

        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            stream_start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            duration = stream_start - origin + float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        num_frames = stream.frames or 0
        if fps is None:
            if num_frames > 1 and duration > 0:
                fps = num_frames / duration
            else:
                raise VideoError(f"cannot determine the frame rate of {path}")
        if duration <= 0:
            duration = num_frames / fps if num_frames else 0.0
        if num_frames <= 0:
            num_frames = max(1, round(duration * fps))
        if decoded < 2 and stats.reached_eof:
            num_frames = decoded
            duration = min(duration, 1.0 / fps) if duration > 0 else 1.0 / fps

        return VideoInfo(
            path=path,
            width=width,
            height=height,
            fps=fps,
            duration=duration,
            num_frames=num_frames,
            rotation=rotation,
            has_audio=bool(container.streams.audio),
            codec=ctx.name,
        )


# ---------------------------------------------------------------------------------------------------- reading


class _FrameConverter:
    """Turns decoded frames into upright RGB arrays, converting each distinct frame only once."""

    def __init__(self, transform: str, path: Path) -> None:
        self.transform = transform
        self.path = path
        self.shape: tuple[int, ...] | None = None
        self._last_frame: av.VideoFrame | None = None
        self._last_array: np.ndarray | None = None

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        if frame is self._last_frame and self._last_array is not None:
            return self._last_array
        image = _apply_orientation(frame.to_ndarray(format="rgb24"), self.transform)
        if self.shape is None:
            self.shape = image.shape
        elif image.shape != self.shape:
            # Streams may change resolution mid-way (webm does); the clip keeps the first frame's size.
            logger.warning("%s: frame size changed to %s; resizing to %s", self.path, image.shape[:2], self.shape[:2])
            image = _resize(image, self.shape[0], self.shape[1])
        self._last_frame, self._last_array = frame, image
        return image


def read_video(
    path: str | os.PathLike[str],
    *,
    fps: float | None = None,
    start: float = 0.0,
    end: float | None = None,
    max_frames: int | None = None,
) -> VideoClip:
    """Decode ``[start, end)`` of a video into upright RGB frames.

    With ``fps`` given, output frame ``k`` is the last source frame whose timestamp is ``<= start + k / fps``
    (frames are dropped or repeated as needed, which also evens out variable frame rate sources); without it the
    source frames are returned as they are and ``VideoClip.fps`` is the stream's average rate. Decoding stops as
    soon as ``end`` or ``max_frames`` is reached, so a short stretch of a long file is cheap.

    The clip must hold at least two frames unless ``max_frames`` asks for fewer. A damaged or truncated file
    yields the frames that could be decoded (with a logged warning); one with no decodable frames is an error.
    """
    path = Path(path)
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise VideoError(f"cannot read {path}: fps must be a positive number, got {fps}")
    if not math.isfinite(start) or start < 0:
        raise VideoError(f"cannot read {path}: start must be >= 0 seconds, got {start}")
    if end is not None and (not math.isfinite(end) or end <= start):
        raise VideoError(f"cannot read {path}: end ({end} s) must be greater than start ({start} s)")
    if max_frames is not None and max_frames < 1:
        raise VideoError(f"cannot read {path}: max_frames must be >= 1, got {max_frames}")

    info = probe_video(path)
    if info.num_frames < 2:
        raise VideoError(f"{path} contains a single frame; a video clip needs at least 2 frames")
    if start >= info.duration:
        raise VideoError(
            f"cannot read {path}: start ({start} s) is at or past the end of the video ({info.duration:.3f} s)"
        )
    stop = info.duration if end is None else min(end, info.duration)
    span = stop - start
    if max_frames is not None:
        span = min(span, max_frames / (fps or info.fps))
    if span > MAX_DURATION:
        raise VideoError(
            f"{path}: reading {span:.1f} s of a {info.duration:.1f} s video exceeds the {MAX_DURATION:.0f} s limit; "
            f"trim it with start/end (e.g. start={start:g}, end={start + MAX_DURATION:g})"
        )

    frames, clip_start, stats = _decode_range(path, info, fps=fps, start=start, end=end, max_frames=max_frames)

    if not frames:
        if stats.frames == 0:
            reason = f" ({stats.last_error})" if stats.last_error else ""
            raise VideoError(f"{path} has no decodable video frames{reason}; the file may be truncated or corrupt")
        raise VideoError(f"{path} has no frames in {_range_text(start, end)}")
    if len(frames) < 2 and (max_frames is None or max_frames >= 2):
        raise VideoError(f"{path}: {_range_text(start, end)} holds only 1 frame; a video clip needs at least 2 frames")
    if stats.errors:
        logger.warning(
            "%s: the file is damaged or truncated (%s); returning the %d frames that could be decoded",
            path,
            stats.last_error,
            len(frames),
        )
    elif start == 0 and stats.reached_eof and stats.header_frames and stats.frames < 0.9 * stats.header_frames - 1:
        # Only a frame count written in the header is trustworthy enough to call a short read truncation.
        logger.warning(
            "%s: decoded %d frames but the header announces %d; the file may be truncated",
            path,
            stats.frames,
            stats.header_frames,
        )

    out_fps = fps if fps is not None else info.fps
    return VideoClip(frames=np.stack(frames), fps=out_fps, start=clip_start, source=path)


def _range_text(start: float, end: float | None) -> str:
    return (
        f"the range start={start} s to end={end} s"
        if end is not None
        else f"the range from start={start} s to the end"
    )


def _decode_range(
    path: Path,
    info: VideoInfo,
    *,
    fps: float | None,
    start: float,
    end: float | None,
    max_frames: int | None,
) -> tuple[list[np.ndarray], float, _DecodeStats]:
    limit = max_frames if max_frames is not None else math.inf
    stop = end if end is not None else math.inf
    native_dt = 1.0 / info.fps

    with _open_input(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        origin = _time_origin(container)
        seeked = start > 0 and _seek(container, stream, origin + start, path)
        stats = _DecodeStats(header_frames=stream.frames or 0)
        source = _iter_frames(container, stream, path, stats, origin, native_dt)
        if seeked:
            source = _check_seek(source, container, stream, path, stats, origin, native_dt, start)
        convert: _FrameConverter | None = None
        out: list[np.ndarray] = []

        def emit(frame: av.VideoFrame) -> bool:
            nonlocal convert
            if convert is None:
                convert = _FrameConverter(_orientation(frame)[1], path)
            out.append(convert(frame))
            return len(out) >= limit

        clip_start = start
        if fps is None:
            # Native frames: frames[0] is the one on screen at `start`, then every later frame before `end`.
            pending: tuple[float, av.VideoFrame] | None = None
            for t, frame in source:
                if t <= start + _TIME_EPS:
                    pending = (t, frame)
                    continue
                if pending is not None:
                    clip_start = pending[0]
                    if emit(pending[1]):
                        break
                    pending = None
                elif not out:
                    clip_start = t
                if t >= stop - _TIME_EPS or emit(frame):
                    break
            else:
                if pending is not None:
                    clip_start = pending[0]
                    emit(pending[1])
        else:
            # Resampled: target time k gets the last frame at or before it; a source that starts late lends its
            # first frame to the targets before it.
            k = 0
            current: av.VideoFrame | None = None
            current_t = start
            done = False
            for t, frame in source:
                while t > start + k / fps + _TIME_EPS:
                    if start + k / fps >= stop - _TIME_EPS or emit(current if current is not None else frame):
                        done = True
                        break
                    k += 1
                if done:
                    break
                current, current_t = frame, t
            else:
                if current is not None:
                    frame_dt = (
                        float(current.duration * current.time_base) if current.duration and current.time_base else 0.0
                    )
                    last_end = min(stop, current_t + (frame_dt if frame_dt > 0 else native_dt))
                    while start + k / fps < last_end - _TIME_EPS and not emit(current):
                        k += 1
    return out, clip_start, stats


def _seek(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, when: float, path: Path
) -> bool:
    """Seek to the keyframe at or before ``when`` (seconds); False when the format cannot seek."""
    if stream.time_base is None:
        return False
    try:
        container.seek(int(when / stream.time_base), stream=stream, backward=True, any_frame=False)
    except (av.FFmpegError, OSError) as exc:
        logger.debug("%s: cannot seek (%s); decoding from the beginning", path, _av_reason(exc))
        return False
    return True


def _check_seek(
    source: Iterator[tuple[float, av.VideoFrame]],
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    path: Path,
    stats: _DecodeStats,
    origin: float,
    native_dt: float,
    start: float,
) -> Iterator[tuple[float, av.VideoFrame]]:
    """Pass frames through, restarting from the beginning if the seek overshot ``start``.

    Some demuxers land on a keyframe after the requested time; the frame on screen at ``start`` would then be
    missing, so decoding from the top is the correct (if slower) fallback.
    """
    first = next(source, None)
    if first is not None and first[0] <= start + native_dt:
        yield first
        yield from source
        return
    logger.debug("%s: seek to %.3f s overshot; decoding from the beginning", path, start)
    container.seek(0, stream=stream, backward=True, any_frame=False)
    stats.frames = 0
    yield from _iter_frames(container, stream, path, stats, origin, native_dt)


# ---------------------------------------------------------------------------------------------------- writing


@dataclass
class _Audio:
    samples: np.ndarray  # channels x samples, float32 planar
    rate: int
    layout: str


def _load_audio(path: Path, start: float, duration: float) -> _Audio | None:
    """Decode ``[start, start + duration)`` of the first audio track of ``path``; None when it has none.

    The result always holds exactly ``round(duration * rate)`` samples: silence fills any part of the range the
    track does not cover, so the audio never drifts from the frames it accompanies.
    """
    if not math.isfinite(start) or start < 0:
        raise VideoError(f"cannot take audio from {path}: audio_start must be >= 0 seconds, got {start}")
    with _open_input(path, what="media") as container:
        if not container.streams.audio:
            logger.info("%s has no audio track; writing a silent video", path)
            return None
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        rate = ctx.sample_rate if ctx.sample_rate in _AAC_RATES else 48000
        layout = "mono" if ctx.channels == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        origin = _time_origin(container)
        if start > 0 and stream.time_base is not None:
            try:
                container.seek(int((origin + start) / stream.time_base), stream=stream, backward=True)
            except (av.FFmpegError, OSError) as exc:
                logger.debug("%s: cannot seek audio (%s); decoding from the beginning", path, _av_reason(exc))

        chunks: list[np.ndarray] = []
        first_t: float | None = None
        stop = start + duration + 0.5
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    logger.warning("%s: skipping undecodable audio (%s)", path, _av_reason(exc))
                    continue
                past_end = False
                for frame in frames:
                    if first_t is None:
                        pts_ok = frame.pts is not None and frame.time_base is not None
                        first_t = float(frame.pts * frame.time_base) - origin if pts_ok else 0.0
                    chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
                    past_end = first_t + sum(c.shape[1] for c in chunks) / rate > stop
                if past_end:
                    break
            chunks.extend(f.to_ndarray() for f in resampler.resample(None))
        except av.FFmpegError as exc:
            logger.warning("%s: audio track is damaged (%s); keeping what was decoded", path, _av_reason(exc))

    channels = 1 if layout == "mono" else 2
    need = round(duration * rate)
    decoded = np.concatenate(chunks, axis=1).astype(np.float32) if chunks else np.zeros((channels, 0), np.float32)
    offset = round((start - (first_t or 0.0)) * rate)
    if offset >= 0:
        decoded = decoded[:, offset : offset + need]
    else:
        decoded = np.concatenate([np.zeros((channels, -offset), np.float32), decoded], axis=1)[:, :need]
    if decoded.shape[1] < need:
        if decoded.shape[1] == 0:
            logger.warning("%s has no audio after %.3f s; the output's audio is silent", path, start)
        decoded = np.concatenate([decoded, np.zeros((channels, need - decoded.shape[1]), np.float32)], axis=1)
    return _Audio(samples=np.ascontiguousarray(decoded), rate=rate, layout=layout)


def _validate_frames(frames: np.ndarray, path: Path) -> np.ndarray:
    if not isinstance(frames, np.ndarray):
        raise VideoError(f"cannot write {path}: frames must be a numpy array, got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoError(f"cannot write {path}: frames must have shape (F, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise VideoError(f"cannot write {path}: frames must be uint8 RGB, got dtype {frames.dtype}")
    if min(frames.shape[:3]) < 1:
        raise VideoError(f"cannot write {path}: frames are empty, shape {frames.shape}")
    return frames


def write_video(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    fps: float,
    *,
    audio_from: Path | None = None,
    audio_start: float = 0.0,
) -> Path:
    """Encode ``F x H x W x 3`` uint8 RGB frames as an H.264/yuv420p mp4 playable in browsers.

    The file appears at ``path`` only once complete (written beside it, then renamed), so a failure never leaves
    a partial file. Odd sizes are padded by one pixel (yuv420p needs even sides). With ``audio_from``, its audio
    from ``audio_start`` for the clip's duration is re-encoded as AAC; a source without audio gives a silent
    video. Returns ``path``.
    """
    path = Path(path)
    frames = _validate_frames(frames, path)
    if isinstance(fps, bool) or not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise VideoError(f"cannot write {path}: fps must be a positive number, got {fps!r}")
    rate = Fraction(float(fps)).limit_denominator(1001)
    num, height, width = frames.shape[:3]
    audio = _load_audio(Path(audio_from), audio_start, num / float(rate)) if audio_from is not None else None

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".partial.mp4")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            _encode(tmp, frames, rate, audio)
        except av.FFmpegError as exc:
            raise VideoError(f"cannot write {path}: encoding failed ({_av_reason(exc)})") from exc
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.debug("wrote %s: %d frames %dx%d at %s fps, audio=%s", path, num, width, height, rate, audio is not None)
    return path


def _encode(out_path: Path, frames: np.ndarray, rate: Fraction, audio: _Audio | None) -> None:
    num, height, width = frames.shape[:3]
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        logger.debug("padding %dx%d frames to even size for yuv420p", width, height)
    with av.open(str(out_path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        video = container.add_stream("libx264", rate=rate, options=dict(_X264_OPTIONS))
        video.width, video.height, video.pix_fmt = width + pad_w, height + pad_h, "yuv420p"
        # Tag BT.709 explicitly: untagged streams are interpreted differently by different players.
        ctx = video.codec_context
        ctx.colorspace, ctx.color_primaries, ctx.color_trc, ctx.color_range = _BT709, _BT709, _BT709, _RANGE_MPEG

        audio_stream = None
        if audio is not None:
            audio_stream = container.add_stream("aac", rate=audio.rate, layout=audio.layout)
        samples_written = 0

        for i in range(num):
            image = frames[i]
            if pad_h or pad_w:
                image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
            frame.pts = i
            container.mux(video.encode(frame))
            if audio_stream is not None and audio is not None:
                # Interleave audio with video so the muxer never has to buffer one whole stream.
                upto = audio.samples.shape[1] if i == num - 1 else round((i + 1) / rate * audio.rate)
                samples_written = _encode_audio(container, audio_stream, audio, samples_written, upto)
        container.mux(video.encode(None))
        if audio_stream is not None:
            container.mux(audio_stream.encode(None))


def _encode_audio(
    container: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    audio: _Audio,
    position: int,
    upto: int,
) -> int:
    chunk = 1024
    while position < upto:
        n = min(chunk, upto - position)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(audio.samples[:, position : position + n]), format="fltp", layout=audio.layout
        )
        frame.sample_rate = audio.rate
        frame.time_base = Fraction(1, audio.rate)
        frame.pts = position
        container.mux(stream.encode(frame))
        position += n
    return position


# ------------------------------------------------------------------------------------------- model helpers


def frame_count_for(n: int, temporal_multiple: int = 4) -> int:
    """Largest ``k * temporal_multiple + 1`` that is ``<= n`` (what causal video VAEs accept); ``1`` for ``n == 1``."""
    if temporal_multiple < 1:
        raise VideoError(f"temporal_multiple must be >= 1, got {temporal_multiple}")
    if n < 1:
        raise VideoError(f"a clip needs at least 1 frame, got {n}")
    return (n - 1) // temporal_multiple * temporal_multiple + 1


def fit_size(height: int, width: int, *, target_area: int, multiple: int = 16) -> tuple[int, int]:
    """Return ``(height, width)`` with the aspect ratio of the input and area close to ``target_area``.

    Both sides are multiples of ``multiple`` and at least ``multiple``.
    """
    if height < 1 or width < 1:
        raise VideoError(f"size must be positive, got {height}x{width} (height x width)")
    if target_area < 1 or multiple < 1:
        raise VideoError(f"target_area and multiple must be positive, got {target_area} and {multiple}")
    scale = math.sqrt(target_area / (height * width))
    new_h = max(multiple, round(height * scale / multiple) * multiple)
    new_w = max(multiple, round(width * scale / multiple) * multiple)
    return int(new_h), int(new_w)


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape[0] == height and image.shape[1] == width:
        return image
    # INTER_AREA averages when shrinking (no aliasing); cubic is sharper when enlarging.
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interpolation)


def conform_clip(
    frames: np.ndarray,
    *,
    num_frames: int,
    height: int,
    width: int,
    resize_mode: str = "crop",
) -> np.ndarray:
    """Take the first ``num_frames`` frames and bring them to ``height x width``.

    ``"crop"`` scales to cover the target and cuts the centre; ``"pad"`` scales to fit inside it (aspect
    preserved) and centres the picture on black.
    """
    if resize_mode not in ("crop", "pad"):
        raise VideoError(f"unknown resize_mode {resize_mode!r}; use 'crop' or 'pad'")
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = getattr(frames, "shape", None)
        raise VideoError(f"frames must be an array of shape (F, H, W, 3), got {shape}")
    if frames.dtype not in (np.uint8, np.float32):
        raise VideoError(f"frames must be uint8 or float32, got {frames.dtype}")
    if num_frames < 1 or height < 1 or width < 1:
        raise VideoError(f"num_frames, height and width must be positive, got {num_frames}, {height}, {width}")
    if len(frames) < num_frames:
        raise VideoError(f"the clip has {len(frames)} frames but {num_frames} are needed")

    src_h, src_w = frames.shape[1:3]
    out = np.zeros((num_frames, height, width, 3), dtype=frames.dtype)
    if resize_mode == "crop":
        scale = max(height / src_h, width / src_w)
        new_h, new_w = max(height, round(src_h * scale)), max(width, round(src_w * scale))
        top, left = (new_h - height) // 2, (new_w - width) // 2
        for i in range(num_frames):
            out[i] = _resize(frames[i], new_h, new_w)[top : top + height, left : left + width]
    else:
        scale = min(height / src_h, width / src_w)
        new_h, new_w = min(height, max(1, round(src_h * scale))), min(width, max(1, round(src_w * scale)))
        top, left = (height - new_h) // 2, (width - new_w) // 2
        for i in range(num_frames):
            out[i, top : top + new_h, left : left + new_w] = _resize(frames[i], new_h, new_w)
    return out
