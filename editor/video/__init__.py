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

from .geometry import conform_clip, fit_size, frame_count_for
from .media import MAX_DURATION, MAX_SIDE, VideoClip, VideoError, VideoInfo
from .read import probe_video, read_video
from .write import write_video

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
