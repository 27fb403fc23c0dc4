"""Writing browser-friendly H.264 mp4, with the source clip's audio re-encoded in sync."""

from __future__ import annotations

import logging
import math
import numbers
import os
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.sidedata.sidedata
import numpy as np

from .media import VideoError, _av_reason, _open_input, _time_origin

logger = logging.getLogger(__name__)

# Sample rates the AAC encoder accepts; anything else is resampled to 48 kHz.
_AAC_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000})

_AUDIO_PREROLL = 0.5

_X264_OPTIONS = {"crf": "18", "preset": "medium"}
# AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic value for BT.709, and AVCOL_RANGE_MPEG.
_BT709 = 1
_RANGE_MPEG = 1


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
            # Land a little early: lapped codecs (AAC, Vorbis, Opus) need a frame or two to warm up.
            preroll = max(0.0, start - _AUDIO_PREROLL)
            try:
                container.seek(int((origin + preroll) / stream.time_base), stream=stream, backward=True)
            except (av.FFmpegError, OSError) as exc:
                logger.debug("%s: cannot seek audio (%s); decoding from the beginning", path, _av_reason(exc))

        chunks: list[np.ndarray] = []
        decoded_samples = 0
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
                    for resampled in resampler.resample(frame):
                        chunks.append(resampled.to_ndarray())
                        decoded_samples += chunks[-1].shape[1]
                    past_end = first_t + decoded_samples / rate > stop
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
    lossless: bool = False,
) -> Path:
    """Encode ``F x H x W x 3`` uint8 RGB frames as an H.264/yuv420p mp4 playable in browsers.

    ``lossless=True`` writes lossless RGB H.264 instead (libx264rgb, qp 0): frames read back bit for bit, as
    training data needs, but few browsers play it.

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
    # A fresh name rather than mkstemp's file, so that the clip gets the usual permissions, not 0600.
    tmp = path.parent / f".{path.stem}.{uuid.uuid4().hex}.partial.mp4"
    try:
        try:
            _encode(tmp, frames, rate, audio, lossless)
        except av.FFmpegError as exc:
            raise VideoError(f"cannot write {path}: encoding failed ({_av_reason(exc)})") from exc
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.debug("wrote %s: %d frames %dx%d at %s fps, audio=%s", path, num, width, height, rate, audio is not None)
    return path


def _encode(out_path: Path, frames: np.ndarray, rate: Fraction, audio: _Audio | None, lossless: bool) -> None:
    num, height, width = frames.shape[:3]
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        logger.debug("padding %dx%d frames to even size for yuv420p", width, height)
    with av.open(str(out_path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        if lossless:
            video = container.add_stream("libx264rgb", rate=rate, options={"qp": "0", "preset": "medium"})
            video.width, video.height, video.pix_fmt = width + pad_w, height + pad_h, "rgb24"
        else:
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
            if not lossless:
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
