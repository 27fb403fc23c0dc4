"""Video files and clips: the types, limits and errors shared by reading and writing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import av.sidedata.sidedata
import numpy as np

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


class VideoError(ValueError):
    """A video file or argument cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learned about a file.

    ``width``/``height`` are the display size, i.e. after ``rotation`` is applied. ``rotation`` is the clockwise
    rotation, in degrees, that turns the stored frames upright (the convention of the legacy ``rotate`` tag and
    of the ffmpeg command line's autorotation); a mirror in the display matrix is undone when reading but not
    reported here. ``num_frames`` is read from the container header when present, otherwise estimated from
    duration and fps.
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
