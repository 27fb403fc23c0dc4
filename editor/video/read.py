"""Probing and reading videos: frames by presentation timestamp, upright, trimmed and resampled."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.sidedata.sidedata
import numpy as np

from .geometry import _resize
from .media import (
    _MAX_CONSECUTIVE_DECODE_ERRORS,
    _TIME_EPS,
    MAX_DURATION,
    VideoClip,
    VideoError,
    VideoInfo,
    _av_reason,
    _check_size,
    _open_input,
    _time_origin,
    _video_stream,
)

logger = logging.getLogger(__name__)

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

    try:
        frames, clip_start, stats = _decode_range(path, info, fps=fps, start=start, end=end, max_frames=max_frames)
    except av.FFmpegError as exc:
        raise VideoError(f"cannot read {path}: decoding failed ({_av_reason(exc)})") from exc

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

    out_fps = float(fps) if fps is not None else info.fps
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
