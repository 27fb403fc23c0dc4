"""Stage 1: raw videos -> pretraining pairs of unpaired clips, in the order of the paper's figure.

basic filter -> scene segmentation -> optical-flow filter -> duration segmentation -> pairing -> instruction
generation -> verb rewriting -> instruction filter -> (all records) near-duplicate filter.

Two random clips of one scene become (original, pseudo-edited): whatever differs between them - objects that moved
in or out, a camera that panned - is what the instruction describes. No pixel is synthesised.
"""

from __future__ import annotations

import functools
import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from editor.video import VideoError, probe_video, read_video

from .backends.base import BackendConfig
from .instructions import InstructionFilter, instruction_filter, near_duplicates, rewrite_verb
from .manifest import clip
from .pipeline import ContextCache, Drop, GlobalStage, Stage, StageContext, record_rng

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif", ".m4v")


@dataclass(frozen=True)
class Stage1Config:
    """Everything stage 1 is run with (see configs/curation/stage1.yaml)."""

    input: Path | None = None  # folder of raw videos, searched recursively
    output: Path = Path("data/stage1")  # manifest.jsonl, its ledger, report.md and the resumable work folder
    workers: int = 1
    seed: int = 0
    # basic filter
    min_duration: float = 2.0
    min_side: int = 64
    min_fps: float = 8.0
    # scene segmentation: PySceneDetect's content detector on small frames
    analysis_side: int = 96
    analysis_fps: float = 12.0
    scene_threshold: float = 27.0
    min_scene_seconds: float = 1.0
    # optical-flow filter: mean Farneback flow, pixels per second at `analysis_side`
    flow_fps: float = 4.0
    min_flow: float = 1.0
    # clips: the model's frame count at its frame rate
    clip_frames: int = 9
    clip_fps: float = 8.0
    pairs_per_segment: int = 1
    # instructions
    describer: BackendConfig = field(default_factory=BackendConfig)
    describe_side: int = 64
    verb_rewrite_probability: float = 0.5
    instructions: InstructionFilter = field(default_factory=InstructionFilter)


class Stage1Context(StageContext):
    def __init__(self, config: Stage1Config) -> None:
        super().__init__()
        self.config = config
        from .backends import build_describer

        self.describer = build_describer(config.describer)


_contexts = ContextCache(Stage1Context)


def make_context(config: Stage1Config) -> Stage1Context:
    """The context for `config`, built once per worker process (a function, so workers find their own cache)."""
    return _contexts(config)


def find_units(config: Stage1Config) -> list[dict]:
    if config.input is None:
        raise ValueError("stage1 needs input=FOLDER of raw videos")
    return find_videos(config.input)


def find_videos(folder: Path) -> list[dict]:
    """Units of a run: every video file under `folder`, with its path relative to it as a stable id.

    Hidden files are skipped: they are unfinished writes (a video writer killed mid-file leaves `.name.partial.mp4`).
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"input folder not found: {folder}")
    files = sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    )  # fmt: skip
    return [{"id": str(p.relative_to(folder)), "path": str(p)} for p in files]


def _small_frames(path: str, fps: float, side: int, start: float = 0.0, end: float | None = None):
    """Yield (time, small RGB frame) at about `fps`, decoded with FFmpeg's scaler so big videos stay cheap."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        scale = side / max(stream.codec_context.width, stream.codec_context.height)
        width = max(2, round(stream.codec_context.width * scale / 2) * 2)
        height = max(2, round(stream.codec_context.height * scale / 2) * 2)
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        next_time = start
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = float(frame.pts * stream.time_base)
            if end is not None and t >= end:
                break
            if t + 1e-6 < next_time:
                continue
            next_time = t + 1.0 / fps
            yield t, frame.reformat(width=width, height=height, format="rgb24").to_ndarray()


# Stages -----------------------------------------------------------------------------------------------------------


def basic_filter(record: dict, ctx: Stage1Context) -> list[dict]:
    c = ctx.config
    try:
        info = probe_video(record["path"])
    except VideoError as error:
        raise Drop("unreadable video") from error
    if info.duration < c.min_duration:
        raise Drop(f"shorter than {c.min_duration:g} s")
    if min(info.width, info.height) < c.min_side:
        raise Drop(f"smaller than {c.min_side} px")
    if info.fps < c.min_fps:
        raise Drop(f"below {c.min_fps:g} fps")
    video = {"duration": info.duration, "width": info.width, "height": info.height, "fps": info.fps}
    return [{**record, "video": video}]


def scene_segmentation(record: dict, ctx: Stage1Context) -> list[dict]:
    from scenedetect import ContentDetector
    from scenedetect.common import FrameTimecode

    c = ctx.config
    min_len = max(1, round(c.min_scene_seconds * c.analysis_fps))
    detector = ContentDetector(threshold=c.scene_threshold, min_scene_len=min_len)
    cuts: list[float] = []
    times: list[float] = []
    for index, (t, frame) in enumerate(_small_frames(record["path"], c.analysis_fps, c.analysis_side)):
        times.append(t)
        found = detector.process_frame(FrameTimecode(index, fps=c.analysis_fps), frame[..., ::-1].copy())
        cuts.extend(times[int(cut.frame_num)] for cut in found if 0 < cut.frame_num < len(times))
    if not times:
        raise Drop("no decodable frames")
    end = record["video"]["duration"]
    bounds = [0.0, *sorted(set(cuts)), end]
    ctx.note("scene_segmentation", cuts=[round(t, 3) for t in sorted(set(cuts))], duration=round(end, 3))
    return [
        {**record, "id": f"{record['id']}#s{i}", "segment": [round(a, 6), round(b, 6)], "cuts": len(bounds) - 2}
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    ]


def flow_filter(record: dict, ctx: Stage1Context) -> list[dict]:
    c = ctx.config
    start, end = record["segment"]
    # Skip the first and last frames of a segment: a cut's neighbours carry the other shot's motion blur.
    margin = min(0.25, (end - start) / 10)
    frames = [f for _, f in _small_frames(record["path"], c.flow_fps, c.analysis_side, start + margin, end - margin)]
    if len(frames) < 2:
        raise Drop("segment too short to measure motion")
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    magnitudes = []
    for a, b in itertools.pairwise(gray):
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        magnitudes.append(float(np.linalg.norm(flow, axis=-1).mean()))
    motion = float(np.mean(magnitudes)) * c.flow_fps  # pixels per second
    if motion < c.min_flow:
        raise Drop("static")
    return [{**record, "scores": {**record.get("scores", {}), "flow": round(motion, 4)}}]


def duration_segmentation(record: dict, ctx: Stage1Context) -> list[dict]:
    c = ctx.config
    start, end = record["segment"]
    length = c.clip_frames / c.clip_fps
    count = int((end - start) // length)
    if count < 2:
        raise Drop("shorter than two clips")
    clips = [[round(start + i * length, 6), round(start + (i + 1) * length, 6)] for i in range(count)]
    return [{**record, "clips": clips}]


def pairing(record: dict, ctx: Stage1Context) -> list[dict]:
    c = ctx.config
    rng = record_rng(c.seed, record, "pairing")
    candidates = [(i, j) for i in range(len(record["clips"])) for j in range(len(record["clips"])) if i != j]
    chosen = rng.sample(candidates, k=min(c.pairs_per_segment, len(candidates)))
    pairs = []
    for k, (i, j) in enumerate(chosen):
        (a0, a1), (b0, b1) = record["clips"][i], record["clips"][j]
        pairs.append({
            "id": f"{record['id']}#p{k}",
            "source": clip(record["path"], a0, a1),
            "target": clip(record["path"], b0, b1),
            "instruction": None,
            "edit_type": None,
            "mask": None,
            "scores": dict(record.get("scores", {})),
            "provenance": {
                "video": record["path"], "segment": record["segment"], "clip_indices": [i, j],
                "clips_in_segment": len(record["clips"]),
            },
        })  # fmt: skip
    return pairs


def _clip_frames(reference: dict, ctx: Stage1Context) -> np.ndarray:
    c = ctx.config
    return _read_small_clip(reference["path"], reference["start"], reference["end"], c.clip_fps, c.clip_frames,
                            c.describe_side)  # fmt: skip


@functools.lru_cache(maxsize=64)
def _read_small_clip(path: str, start: float, end: float, fps: float, count: int, side: int) -> np.ndarray:
    # Pairs of one segment share clips: each is decoded once per worker, not once per pair.
    frames = read_video(path, fps=fps, start=start, end=end, max_frames=count).frames
    scale = side / max(frames.shape[1:3])
    size = (max(1, round(frames.shape[2] * scale)), max(1, round(frames.shape[1] * scale)))
    small = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
    small.flags.writeable = False
    return small


def instruction_generation(record: dict, ctx: Stage1Context) -> list[dict]:
    change = ctx.describer.describe_change(_clip_frames(record["source"], ctx), _clip_frames(record["target"], ctx))
    if change is None:
        raise Drop("no visible change")
    provenance = {**record["provenance"], "describer": ctx.config.describer.kind}
    return [{**record, "instruction": change.instruction, "edit_type": change.edit_type, "provenance": provenance}]


def verb_rewriting(record: dict, ctx: Stage1Context) -> list[dict]:
    rng = record_rng(ctx.config.seed, record, "verb_rewriting")
    instruction = record["instruction"]
    if rng.random() < ctx.config.verb_rewrite_probability:
        instruction = rewrite_verb(instruction, rng)
    return [{**record, "instruction": instruction}]


def near_duplicate_filter(records: list[dict], ctx: Stage1Context):
    return near_duplicates(records, ctx.config.instructions)


STAGES = (
    Stage("basic_filter", "1", basic_filter),
    Stage("scene_segmentation", "1", scene_segmentation),
    Stage("flow_filter", "1", flow_filter),
    Stage("duration_segmentation", "1", duration_segmentation),
    Stage("pairing", "1", pairing),
    Stage("instruction_generation", "1", instruction_generation),
    Stage("verb_rewriting", "1", verb_rewriting),
    Stage("instruction_filter", "1", instruction_filter),
)
GLOBAL_STAGES = (GlobalStage("near_duplicate_filter", "1", near_duplicate_filter),)
