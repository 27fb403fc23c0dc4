"""ICVE Studio, the web app: upload a clip, say what to change, get the edited clip beside the original.

    python app.py                          # the bundled demo model
    python app.py --model path/to/pipeline --port 7860

The app is a thin layer over `editor`: the model is loaded once at start-up (`editor.loading.load_pipeline`), the
preview is the pipeline's own `load_source`, masks are `editor.masks` and the edit is one pipeline call. Every request
writes into a temporary folder of its own; edits run one at a time, the others wait in a bounded queue.
"""

from __future__ import annotations

try:  # ZeroGPU on Hugging Face Spaces lends a GPU per call; it has to be imported before torch touches CUDA.
    import spaces
except ImportError:
    spaces = None

import argparse
import json
import logging
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import gradio as gr
import numpy as np
import torch
from PIL import Image

from editor.compute_thread import ComputeThread
from editor.loading import PRECISIONS, LoadOptions, load_pipeline
from editor.masks import PROPAGATIONS, overlay_mask
from editor.memory import PLANS
from editor.pipeline import EditProgress, VideoEditPipeline, VideoEditPipelineOutput
from editor.presets import BENCHMARK_PAGE, DEFAULT_MODEL, PRESETS
from editor.quantization import METHODS, Quantization
from editor.video import frame_count_for, probe_video, read_video, write_video

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "assets" / "examples"

VIDEO_TYPES = (".mp4", ".mov", ".webm", ".mkv", ".gif")
MAX_UPLOAD_MB = 50
MAX_SECONDS = 60.0
QUEUE_SIZE = 16
# Outputs stay this long for the history gallery to reopen them; older request folders are removed.
KEEP_OUTPUTS_S = 24 * 3600
PREVIEW_FRAMES = 8
# The mask is painted on the frame scaled up to about this many pixels on its long side (small models see tiny frames).
PAINT_SIDE = 512
# How long ZeroGPU lends its GPU for one edit: the full-size model's 50 steps at 768x480 with room to spare.
GPU_SECONDS = 300
STILL_IMAGE_CODECS = frozenset({"png", "mjpeg", "webp", "bmp", "tiff", "jpeg2000", "qoi"})

# Examples of real footage, for models trained on it; the demo model's come from its own world (see `examples_for`).
EDIT_TYPES = {
    "recolour": "Make the car bright red.",
    "add": "Add black glasses to the person's face.",
    "remove": "Remove the flower vase.",
    "replace": "Turn the wolf into a red fox.",
    "background": "Replace the background with a snowy mountain landscape.",
    "style": "Make it look like a watercolour painting.",
}
EXAMPLE_CLIPS = (
    ("wolf.mp4", "Turn the wolf into a red fox."),
    ("butterfly.mp4", "Change the marigold to a purple flower."),
    ("kitten.mp4", "Remove the flower vase."),
    ("glasses.mp4", "Add black glasses to the person's face."),
    ("hiker.mp4", "Make it a snowy winter scene."),
)
# Clips of the procedural world the demo model was trained on, written by
# `python -m training.world pairs assets/examples/demo --count 6 --seed 4242 --size 192 --fps 4.5 --phrasing train
# --playable --prefix example`.
DEMO_EXAMPLES = EXAMPLES_DIR / "demo" / "manifest.jsonl"


def examples_for(model_name: str) -> tuple[list[tuple[Path, str]], dict[str, str]]:
    """Example clips with instructions, and one instruction per edit type, that suit the model: the world's for the
    demo model (real footage means nothing to it), real footage for the others."""
    if model_name == DEFAULT_MODEL and DEMO_EXAMPLES.is_file():
        records = [json.loads(line) for line in DEMO_EXAMPLES.read_text().splitlines() if line.strip()]
        clips = [(ROOT / r["source"]["path"], r["instruction"]) for r in records]
        return clips, {r["edit_type"]: r["instruction"] for r in records}
    return [(EXAMPLES_DIR / name, text) for name, text in EXAMPLE_CLIPS], EDIT_TYPES


def benchmark_note(model_name: str) -> str:
    """How the bundled model scored on its held-out benchmark, from the card the recipe ships with it, so that no
    one takes a small CPU-trained model for more than it is."""
    preset = PRESETS.get(model_name)
    card = ROOT / preset.bundled / "training.json" if preset is not None and preset.bundled else None
    if card is None or not card.is_file():
        return ""
    groups = json.loads(card.read_text())["benchmark"]
    # Strict success (the edit region checked against the ground truth too) where the card has it: the plainer
    # clean success passes, for instance, an object removed into a smear.
    key = "strict_success" if "strict_success" in groups["overall"] else "clean_success"
    rates = {name: g[key]["rate"] for name, g in {**groups["by_edit_type"], "all": groups["overall"]}.items()}
    per_type = ", ".join(f"{name} {rate:.0%}" for name, rate in rates.items() if rate is not None)
    page = card.parent / BENCHMARK_PAGE
    where = f"{page.relative_to(ROOT)}, docs/RESULTS.md" if page.is_file() else "docs/RESULTS.md"
    return (f"The bundled {model_name} model is small and trained on 2 CPU cores on a procedural world of shapes. "
            f"Edits that came out right on its held-out benchmark ({key.replace('_', ' ')}): {per_type} "
            f"({where}).")  # fmt: skip


# One tracker for every handler: it reports to whichever request is running (gradio keeps that in a context variable).
PROGRESS = gr.Progress()
STAGES = {"encode": "Encoding the instruction and the source", "denoise": "Denoising", "decode": "Decoding frames"}


def _on_gpu(fn: Callable) -> Callable:
    """Run `fn` on a ZeroGPU device where the `spaces` package is there; as it is elsewhere."""
    return spaces.GPU(duration=GPU_SECONDS)(fn) if spaces is not None else fn


class EditCancelled(Exception):
    """The user pressed Cancel; raised from the pipeline's progress callback to stop it between steps."""


@dataclass(frozen=True)
class Source:
    """The clip as the model sees it, and where it came from."""

    path: Path
    frames: np.ndarray  # F, H, W, 3 uint8
    fps: float
    start: float


@contextmanager
def _user_errors(path: str | Path | None = None):
    """Turn failures into one clear message for the page (`gr.Error`); never a stack trace."""
    try:
        yield
    except gr.Error:
        raise
    except EditCancelled as error:
        raise gr.Error("The edit was cancelled.") from error
    except ValueError as error:  # VideoError, MaskError and the pipeline's check_inputs
        message = str(error)
        if path:
            # Uploads live under long temporary paths; the file's own name is what the user knows.
            message = message.replace(str(path), Path(path).name)
        raise gr.Error(message) from error
    except Exception as error:
        logger.exception("request failed")
        raise gr.Error(f"Something went wrong ({type(error).__name__}): {error}") from error


def _paint_scale(height: int, width: int) -> int:
    return max(1, PAINT_SIDE // max(height, width))


def _mask_from_editor(value: dict | None) -> np.ndarray | None:
    """The painted region of the mask editor (its layers' alpha), or None when nothing was painted."""
    layers = [layer for layer in (value or {}).get("layers") or [] if layer is not None]
    painted = [layer[..., 3] > 0 for layer in layers if layer.ndim == 3 and layer.shape[-1] == 4]
    if not painted or not np.any(painted):
        return None
    return np.any(painted, axis=0)


class Studio:
    """The loaded model and the handlers of the page; one per app."""

    def __init__(
        self,
        pipe: VideoEditPipeline,
        model_name: str,
        output_root: Path | None = None,
        compute: ComputeThread | None = None,
    ) -> None:
        self.pipe = pipe
        # Every call into the model runs on one thread, the one that loaded it where the app did (see ComputeThread);
        # that also keeps the pipeline, its scheduler above all, from running twice at once.
        self.compute = compute or ComputeThread()
        self.model_name = model_name
        self.defaults = pipe.defaults
        self.output_root = output_root or Path(tempfile.gettempdir()) / "icve-studio"
        self.output_root.mkdir(parents=True, exist_ok=True)
        self._running: dict[str, threading.Event] = {}
        self.key = f"{model_name}:{id(self)}"
        _STUDIOS[self.key] = self

    # Inputs -------------------------------------------------------------------------------------------------------

    def resolutions(self) -> list[str]:
        """Sizes to offer: auto (the clip's aspect at the model's area), the model's own, transposed, and half."""
        d, m = self.defaults, self.pipe.spatial_multiple
        sizes = [(d.width, d.height), (d.height, d.width)]
        sizes.append((max(m, d.width // 2 // m * m), max(m, d.height // 2 // m * m)))
        return ["auto", *dict.fromkeys(f"{w}x{h}" for w, h in sizes)]

    def check_upload(self, video: str | None) -> Path:
        """The uploaded file, if it is a video within the limits; a clear message if not."""
        if not video:
            raise gr.Error("Upload a video first.")
        path = Path(video)
        if path.suffix.lower() not in VIDEO_TYPES:
            raise gr.Error(f"{path.name}: upload a video ({', '.join(VIDEO_TYPES)}), not a {path.suffix} file.")
        size_mb = path.stat().st_size / 2**20 if path.is_file() else 0
        if size_mb > MAX_UPLOAD_MB:
            raise gr.Error(f"{path.name} is {size_mb:.0f} MB; the limit is {MAX_UPLOAD_MB} MB.")
        with _user_errors(path):
            info = probe_video(path)
        if info.codec in STILL_IMAGE_CODECS and info.num_frames <= 1:
            raise gr.Error(f"{path.name} is a still image ({info.codec.upper()}), not a video.")
        if info.duration > MAX_SECONDS:
            raise gr.Error(
                f"{path.name} is {info.duration:.1f} s long; the limit is {MAX_SECONDS:.0f} s. Cut it shorter first."
            )
        return path

    def load(
        self, video: str | None, start: float, end: float, max_frames: int, resolution: str, resize: str
    ) -> Source:
        """The source exactly as the model will see it (the pipeline's own `load_source`), up to `max_frames`."""
        path = self.check_upload(video)
        end = end if end and end > 0 else None
        height = width = None
        if resolution and resolution != "auto":
            width, height = (int(side) for side in resolution.split("x"))
        d = self.defaults
        with _user_errors(path):
            frames, start = self.compute.run(
                self.pipe.load_source,
                path, height=height, width=width, num_frames=None, fps=d.fps, start=float(start or 0), end=end,
                resize_mode=resize,
            )  # fmt: skip
        count = frame_count_for(min(len(frames), int(max_frames or len(frames))), self.pipe.temporal_multiple)
        return Source(path=path, frames=frames[:count], fps=d.fps, start=start)

    def preview(
        self, video: str | None, start: float, end: float, max_frames: int, resolution: str, resize: str,
        mask_frame: int,
    ) -> tuple:  # fmt: skip
        """The clip as the model will see it (a video and some frames), what it is, and the frame to paint on."""
        if not video:
            return None, [], "Upload a clip to see what the model will edit.", None, gr.update(maximum=1, value=0)
        source = self.load(video, start, end, max_frames, resolution, resize)
        count, height, width = source.frames.shape[:3]
        picks = np.unique(np.linspace(0, count - 1, min(PREVIEW_FRAMES, count)).round().astype(int))
        folder = self._request_folder()
        gallery = [(_save_image(folder / f"frame-{i}.png", source.frames[i]), f"frame {i}") for i in picks]
        info = probe_video(source.path)
        text = (
            f"**The model sees {count} frames of {width}x{height} at {source.fps:g} fps** "
            f"({count / source.fps:.2f} s from {source.start:.2f} s). "
            f"Source: {info.width}x{info.height}, {info.duration:.1f} s at {info.fps:g} fps."
        )
        frame = min(int(mask_frame or 0), count - 1)
        background = self._paint_background(source, frame, folder)
        view = str(write_video(folder / "model_view.mp4", source.frames, source.fps))
        return view, gallery, text, background, gr.update(maximum=max(1, count - 1), value=frame)

    def _paint_background(self, source: Source, frame: int, folder: Path) -> dict:
        image = source.frames[frame]
        scale = _paint_scale(*image.shape[:2])
        if scale > 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        return {"background": _save_image(folder / f"paint-{frame}.png", image), "layers": [], "composite": None}

    def paint_frame(
        self, video: str | None, start: float, end: float, max_frames: int, resolution: str, resize: str,
        mask_frame: int,
    ) -> dict | None:  # fmt: skip
        """The frame to paint the mask on, scaled up for a brush (the mask is scaled back to the model's size)."""
        if not video:
            return None
        source = self.load(video, start, end, max_frames, resolution, resize)
        frame = min(int(mask_frame or 0), len(source.frames) - 1)
        return self._paint_background(source, frame, self._request_folder())

    def mask_preview(
        self, video: str | None, start: float, end: float, max_frames: int, resolution: str, resize: str,
        editor: dict | None, mask_frame: int, propagation: str, feather: float,
    ) -> str:  # fmt: skip
        """The mask over the whole clip (tinted red), as the edit will use it."""
        source = self.load(video, start, end, max_frames, resolution, resize)
        painted = _mask_from_editor(editor)
        if painted is None:
            raise gr.Error("Paint the region to edit on the frame first (the brush), then preview the mask.")
        with _user_errors(source.path):
            _, feathered = self.compute.run(
                self.pipe.prepare_mask,
                painted, source.frames, mask_frame=int(mask_frame or 0), mask_propagation=propagation,
                mask_feather=float(feather), resize_mode=resize,
            )  # fmt: skip
        folder = self._request_folder()
        return str(write_video(folder / "mask.mp4", overlay_mask(source.frames, feathered), source.fps))

    # Edit ---------------------------------------------------------------------------------------------------------

    def _request_folder(self) -> Path:
        cutoff = time.time() - KEEP_OUTPUTS_S
        for old in self.output_root.glob("edit-*"):
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix="edit-", dir=self.output_root))

    def edit(
        self, video: str | None, instruction: str, start: float = 0.0, end: float = 0.0, max_frames: int | None = None,
        resolution: str = "auto", resize: str = "crop", steps: int | None = None, guidance: float | None = None,
        seed: int = 0, randomize: bool = False, editor: dict | None = None, mask_frame: int = 0,
        propagation: str = "static", feather: float = 0.0, history: list[dict] | None = None,
        request: gr.Request = None, progress=PROGRESS,
    ) -> tuple:  # fmt: skip
        """Run one edit; returns the edit event's outputs (see `build_demo`). Unset settings are the model's."""
        d = self.defaults
        steps = d.num_inference_steps if steps is None else steps
        guidance = d.guidance_scale if guidance is None else guidance
        if not instruction or not instruction.strip():
            raise gr.Error("Write an instruction first, e.g. “replace the dog with a cat”.")
        seed = random.randrange(2**31) if randomize else int(seed or 0)
        source = self.load(video, start, end, max_frames, resolution, resize)
        painted = _mask_from_editor(editor)
        visitor = request.session_hash if request is not None and request.session_hash else "local"
        self._running[visitor] = stop = threading.Event()
        began = time.perf_counter()
        with _user_errors(source.path), self._forget(visitor, stop):
            result = self.compute.run(
                _run_pipeline, self.key, visitor, source, instruction.strip(), seed, progress,
                num_inference_steps=int(steps), guidance_scale=float(guidance), resize_mode=resize,
                mask=painted, mask_frame=int(mask_frame or 0), mask_propagation=propagation,
                mask_feather=float(feather),
            )  # fmt: skip
        seconds = time.perf_counter() - began
        edited_path, pair_path, mask_path = self._write(source, result)
        edited = result.frames[0]
        count, height, width = edited.shape[:3]
        folder = Path(edited_path).parent
        thumb = self._thumbnail(edited[count // 2])
        compare = (
            _save_image(folder / "compare-0-a.png", source.frames[0]),
            _save_image(folder / "compare-0-b.png", edited[0]),
        )
        settings = dict(steps=int(steps), guidance=float(guidance), seed=seed, frames=count, size=f"{width}x{height}",
                        mask=propagation if painted is not None else "none")  # fmt: skip
        entry = dict(instruction=instruction.strip(), edited=edited_path, pair=pair_path, mask=mask_path, frames=count,
                     settings=settings, thumb=_save_image(folder / "thumb.png", thumb))  # fmt: skip
        history = [*(history or []), entry]
        status = f"Edited {count} frames of {width}x{height} in {seconds:.1f} s: {_describe(settings)}"
        return (
            edited_path, pair_path, compare, gr.update(maximum=max(1, count - 1), value=0),
            gr.update(value=edited_path, interactive=True), gr.update(value=pair_path, interactive=True),
            history, seed, status, mask_path, entry,
        )  # fmt: skip

    def edit_example(self, video: str, instruction: str, progress=PROGRESS) -> tuple[str, str]:
        """An example clip edited with the model's defaults (what cached examples show)."""
        source = self.load(video, 0.0, 0.0, self.defaults.num_frames, "auto", "crop")
        with _user_errors(source.path):
            result = self.compute.run(_run_pipeline, self.key, "", source, instruction, 0, progress)
        edited_path, pair_path, _ = self._write(source, result)
        return edited_path, pair_path

    def _write(self, source: Source, result: VideoEditPipelineOutput) -> tuple[str, str, str | None]:
        """The edit, original | edit side by side (both with the source's audio) and the mask overlay, as mp4."""
        folder = self._request_folder()
        edited = result.frames[0]
        audio = dict(audio_from=source.path, audio_start=source.start)
        pair = np.concatenate([source.frames, edited], axis=2)  # F, H, 2W, 3
        paths = [write_video(folder / "edited.mp4", edited, source.fps, **audio),
                 write_video(folder / "side_by_side.mp4", pair, source.fps, **audio)]  # fmt: skip
        if result.mask is not None:
            paths.append(write_video(folder / "mask.mp4", overlay_mask(source.frames, result.mask), source.fps))
        return str(paths[0]), str(paths[1]), str(paths[2]) if len(paths) > 2 else None

    @contextmanager
    def _forget(self, visitor: str, stop: threading.Event):
        try:
            yield
        finally:
            if self._running.get(visitor) is stop:
                del self._running[visitor]

    def cancel(self, request: gr.Request = None) -> str:
        """Stop this visitor's running edit at its next step."""
        visitor = request.session_hash if request is not None and request.session_hash else "local"
        stop = self._running.get(visitor)
        if stop is not None:
            stop.set()
        return "Cancelled."

    @staticmethod
    def _thumbnail(frame: np.ndarray) -> np.ndarray:
        scale = 160 / max(frame.shape[:2])
        size = (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale)))
        return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST)

    # Outputs ------------------------------------------------------------------------------------------------------

    def compare_frame(self, current: dict | None, index: float) -> tuple[str, str] | None:
        """Frame `index` of the current result, original and edited, for the comparison slider."""
        if not current:
            return None
        with _user_errors():
            pair = read_video(current["pair"]).frames
        index = min(int(index), len(pair) - 1)
        half = pair.shape[2] // 2
        folder = Path(current["pair"]).parent
        return (_save_image(folder / f"compare-{index}-a.png", pair[index, :, :half]),
                _save_image(folder / f"compare-{index}-b.png", pair[index, :, half:]))  # fmt: skip

    def restore(self, history: list[dict] | None, evt: gr.SelectData) -> tuple:
        """Reopen an earlier edit of this visit: its outputs and the settings it was made with."""
        if not history or evt.index is None or not 0 <= int(evt.index) < len(history):
            raise gr.Error("That edit is no longer in the history.")
        entry = history[int(evt.index)]
        if not Path(entry["edited"]).is_file():
            raise gr.Error("That edit's files have expired; run it again.")
        s = entry["settings"]
        return (
            entry["edited"], entry["pair"], self.compare_frame(entry, 0),
            gr.update(maximum=max(1, entry["frames"] - 1), value=0),
            gr.update(value=entry["edited"], interactive=True), gr.update(value=entry["pair"], interactive=True),
            entry["instruction"], s["steps"], s["guidance"], s["seed"], f"Reopened: {_describe(s)}", entry["mask"],
            entry,
        )  # fmt: skip


def _save_image(path: Path, image: np.ndarray) -> str:
    # Files, not arrays, go to gradio: it caches arrays by content and rewrites that file in place, so two requests
    # returning the same picture (the same source frame) could serve each other a half-written file.
    Image.fromarray(image).save(path)
    return str(path)


def _describe(settings: dict) -> str:
    return (
        f"seed {settings['seed']}, {settings['steps']} steps, guidance {settings['guidance']:g}, "
        f"{settings['frames']} frames at {settings['size']}, mask {settings['mask']}"
    )


def _gallery(history: list[dict]) -> list[tuple[str, str]]:
    return [
        (entry["thumb"], f"{i + 1}. {entry['instruction']} ({_describe(entry['settings'])})")
        for i, entry in enumerate(history)
    ]


# The loaded models by key. ZeroGPU runs `_run_pipeline` in a worker forked from this process: the worker inherits
# the models, and the call's arguments stay plain values that can be pickled on the way there.
_STUDIOS: dict[str, Studio] = {}


@_on_gpu
def _run_pipeline(studio_key: str, run_key: str, source: Source, instruction: str, seed: int, progress, **settings):
    """One pipeline call, on the studio's compute thread; Cancel (the run's stop event) ends it between steps through
    the progress callback. `settings` are the pipeline's sampling and mask arguments."""
    studio = _STUDIOS[studio_key]
    stop = studio._running.get(run_key) or threading.Event()

    def report(state: EditProgress) -> None:
        if stop.is_set():
            raise EditCancelled
        progress((state.step, state.total), desc=STAGES.get(state.stage, state.stage), unit="steps")

    if stop.is_set():
        raise EditCancelled
    count, height, width = source.frames.shape[:3]
    return studio.pipe(
        source.frames, instruction, height=height, width=width, num_frames=count, fps=source.fps,
        start=source.start, generator=torch.Generator().manual_seed(seed), progress_callback=report, **settings,
    )  # fmt: skip


def build_demo(
    pipe: VideoEditPipeline,
    *,
    model_name: str,
    load_summary: str = "",
    output_root: Path | None = None,
    cache_examples: bool | None = None,
    compute: ComputeThread | None = None,
) -> gr.Blocks:
    """The page around a loaded pipeline, queued (one edit at a time, at most `QUEUE_SIZE` waiting).

    Example outputs are cached, lazily, for the bundled demo model only (`cache_examples=None`): other models may be
    too slow to run for a click on an example. `compute` is the thread that loaded `pipe`, to run it on.
    """
    studio = Studio(pipe, model_name, output_root, compute)
    example_clips, example_instructions = examples_for(model_name)
    d = pipe.defaults
    cache = model_name == DEFAULT_MODEL if cache_examples is None else cache_examples
    limits = f"mp4, mov, webm, mkv or gif, up to {MAX_UPLOAD_MB} MB and {MAX_SECONDS:.0f} s"
    last_frame = max(1, d.num_frames - 1)
    private = dict(api_visibility="private")
    light = dict(api_visibility="private", concurrency_limit=4, concurrency_id="preview")

    with gr.Blocks(title="ICVE Studio", delete_cache=(3600, KEEP_OUTPUTS_S)) as demo:
        history, current = gr.State([]), gr.State(None)
        gr.Markdown(
            "# ICVE Studio\nUpload a clip, say what to change, get the edited clip beside the original. "
            f"Videos: {limits}; the model edits up to {d.num_frames} frames at {d.fps:g} fps "
            f"(about {d.num_frames / d.fps:.1f} s) from the start you choose.\n\n{benchmark_note(model_name)}"
        )
        with gr.Row():
            with gr.Column():
                # A file upload, not gr.Video's: the browser's video picker refuses GIFs.
                source = gr.File(label=f"Source video ({limits})", file_types=list(VIDEO_TYPES), height=120,
                                 elem_id="source")  # fmt: skip
                with gr.Row():
                    start = gr.Number(0, label="Start (s)", minimum=0, elem_id="start")
                    end = gr.Number(0, label="End (s, 0 = to the end)", minimum=0, elem_id="end")
                preview_info = gr.Markdown("Upload a clip to see the frames the model will edit.", elem_id="info")
                model_view = gr.Video(label="The clip as the model sees it", interactive=False, loop=True, height=260,
                                      elem_id="model_view")  # fmt: skip
                preview = gr.Gallery(label="Frames the model will see", columns=4, height=220, buttons=[],
                                     elem_id="preview")  # fmt: skip
            with gr.Column():
                instruction = gr.Textbox(label="Instruction (Enter runs the edit)", max_lines=3, elem_id="instruction",
                                         placeholder="e.g. Turn the wolf into a red fox.")  # fmt: skip
                gr.Examples([[text] for text in example_instructions.values()], inputs=[instruction],
                            example_labels=[f"{kind}: {text}" for kind, text in example_instructions.items()],
                            label="Example instructions by edit type")  # fmt: skip
                with gr.Row():
                    run = gr.Button("Edit", variant="primary", elem_id="run")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
                status = gr.Markdown(elem_id="status")
                with gr.Accordion("Mask: change only part of the frame (optional)", open=True):
                    gr.Markdown("Paint the region to change: outside it the source is kept exactly. Nothing painted "
                                "edits the whole frame.")  # fmt: skip
                    mask_frame = gr.Slider(0, last_frame, value=0, step=1, label="Frame to paint on",
                                           elem_id="mask_frame")  # fmt: skip
                    brush = gr.Brush(colors=["#ff3030"], default_color="#ff3030", color_mode="fixed", default_size=24)
                    editor = gr.ImageEditor(
                        label="Mask", type="numpy", image_mode="RGBA", layers=False, transforms=(), sources=(),
                        brush=brush, eraser=gr.Eraser(), format="png", canvas_size=(PAINT_SIDE, PAINT_SIDE),
                        height=420, elem_id="mask_editor",
                    )  # fmt: skip
                    with gr.Row():
                        propagation = gr.Radio(list(PROPAGATIONS), value="static", label="Over the clip",
                                               info="static: in place on every frame; track: follows the content",
                                               elem_id="propagation")  # fmt: skip
                        feather = gr.Slider(0, 32, value=max(1, min(d.height, d.width) // 60), step=1,
                                            label="Feather (pixels)", info="soft edge inside the mask",
                                            elem_id="feather")  # fmt: skip
                    mask_button = gr.Button("Preview the mask over the clip", elem_id="mask_preview_button")
                    mask_video = gr.Video(label="Mask over the clip", interactive=False, height=300,
                                          elem_id="mask_preview")  # fmt: skip
        with gr.Accordion("Settings", open=False):
            with gr.Row():
                models = list(dict.fromkeys([model_name, *PRESETS]))
                gr.Dropdown(models, value=model_name, label="Model", interactive=False,
                            info="the loaded one; start the app with --model to change it")  # fmt: skip
                gr.Textbox(load_summary or "as loaded", label="Precision and memory plan", interactive=False)
            with gr.Row():
                steps = gr.Slider(1, 100, value=d.num_inference_steps, step=1, label="Steps", elem_id="steps")
                guidance = gr.Slider(1, 15, value=d.guidance_scale, step=0.5, label="Guidance", elem_id="guidance",
                                     info="1 turns classifier-free guidance off")  # fmt: skip
                seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="seed")
                randomize = gr.Checkbox(False, label="New random seed each run", elem_id="randomize")
            with gr.Row():
                frames = gr.Slider(1, d.num_frames, value=d.num_frames, step=pipe.temporal_multiple,
                                   label="Frames (at most)", elem_id="frames")  # fmt: skip
                resolution = gr.Dropdown(studio.resolutions(), value="auto", label="Resolution (width x height)",
                                         info="auto keeps the clip's aspect at the model's size")  # fmt: skip
                resize = gr.Radio(["crop", "pad"], value="crop", label="Fit", elem_id="resize")

        gr.Markdown("## Result")
        with gr.Row():
            edited = gr.Video(label="Edited", interactive=False, include_audio=True, buttons=["download"], height=360,
                              elem_id="edited")  # fmt: skip
            side = gr.Video(label="Original | edited", interactive=False, include_audio=True, buttons=["download"],
                            height=360, elem_id="side_by_side")  # fmt: skip
        with gr.Row():
            compare = gr.ImageSlider(label="Compare a frame (original | edited)", interactive=False, max_height=360,
                                     elem_id="compare")  # fmt: skip
            with gr.Column():
                compare_frame = gr.Slider(0, last_frame, value=0, step=1, label="Frame to compare",
                                          elem_id="compare_frame")  # fmt: skip
                download_edit = gr.DownloadButton("Download the edit", interactive=False, elem_id="download_edit")
                download_pair = gr.DownloadButton("Download side by side", interactive=False, elem_id="download_pair")
        gallery = gr.Gallery(label="Edits so far (click one to go back to it)", columns=6, height=200,
                             allow_preview=False, fit_columns=False, object_fit="contain",
                             elem_id="history")  # fmt: skip
        clips = [[str(path), text] for path, text in example_clips if path.is_file()]
        if clips:
            gr.Examples(clips, inputs=[source, instruction], outputs=[edited, side], fn=studio.edit_example,
                        cache_examples=cache, cache_mode="lazy" if cache else None, preload=False,
                        label="Example clips", **private)  # fmt: skip

        clip_settings = [source, start, end, frames, resolution, resize]
        clip_changes = [source.change, start.submit, start.blur, end.submit, end.blur, frames.release,
                        resolution.change, resize.change]  # fmt: skip
        previews = [model_view, preview, preview_info, editor, mask_frame]
        gr.on(clip_changes, studio.preview, [*clip_settings, mask_frame], previews, trigger_mode="always_last",
              **light)  # fmt: skip
        mask_frame.release(studio.paint_frame, [*clip_settings, mask_frame], editor, **light)
        mask_inputs = [*clip_settings, editor, mask_frame, propagation, feather]
        mask_button.click(studio.mask_preview, mask_inputs, mask_video, **light)

        edit_inputs = [source, instruction, start, end, frames, resolution, resize, steps, guidance, seed, randomize,
                       editor, mask_frame, propagation, feather, history]  # fmt: skip
        shown = [edited, side, compare, compare_frame, download_edit, download_pair]
        edit_outputs = [*shown, history, seed, status, mask_video, current]
        one_at_a_time = dict(concurrency_limit=1, concurrency_id="pipeline")
        run_event = run.click(studio.edit, edit_inputs, edit_outputs, api_name="edit", **one_at_a_time)
        submit_event = instruction.submit(studio.edit, edit_inputs, edit_outputs, **private, **one_at_a_time)
        # The gallery follows in its own light event: the edit's answer (the API's too) then stays the same size
        # however long the session, instead of carrying every earlier edit's thumbnail.
        for event in (run_event, submit_event):
            event.success(_gallery, history, gallery, **light)
        cancel.click(studio.cancel, None, status, cancels=[run_event, submit_event], queue=False, **private)
        compare_frame.release(studio.compare_frame, [current, compare_frame], compare, **private)
        restored = [*shown, instruction, steps, guidance, seed, status, mask_video, current]
        gallery.select(studio.restore, history, restored, **private)

    return demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)


def serve(
    demo: gr.Blocks, *, host: str | None = None, port: int | None = None, share: bool = False, block: bool = True
) -> None:
    """Launch with the app's limits: upload size, and files served from the examples folder only."""
    demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=f"{MAX_UPLOAD_MB}mb",
        allowed_paths=[str(EXAMPLES_DIR)],
        prevent_thread_lock=not block,
        theme=gr.themes.Soft(),
        css="#status { min-height: 1.5em; }",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python app.py", description="ICVE Studio: the web app.")
    parser.add_argument("--model", help=f"a preset ({', '.join(PRESETS)}) or a pipeline folder; demo by default")
    parser.add_argument("--base", help="icve: the HunyuanVideo base folder (diffusers layout) or hub id")
    parser.add_argument("--transformer", help="icve: the ICVE transformer folder or hub id")
    parser.add_argument(
        "--precision", choices=sorted(PRECISIONS),
        help="bf16 where it is faster (CUDA; AVX512-BF16 or AMX CPUs where it times faster), else fp32, by default",
    )  # fmt: skip
    parser.add_argument("--quantization", choices=METHODS, default="none", help="int8 or nf4 weights (large models)")
    parser.add_argument("--memory", choices=PLANS, default="auto", help="where the model's parts live while editing")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, help="port to listen on (default 7860, or the next free one)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    return parser


def load_model(args: argparse.Namespace) -> tuple[VideoEditPipeline, str]:
    """Load the model the arguments name, once; returns it and a line on its precision and memory plan."""
    options = LoadOptions(
        device=args.device,
        precision=args.precision,
        quantization=Quantization(args.quantization),
        memory_plan=args.memory,
    )
    pipe = load_pipeline(args.model, base=args.base, transformer=args.transformer, options=options)
    pipe.set_progress_bar_config(disable=True)
    precision = options.resolved_precision()
    plan = pipe.memory_plan + (" (chosen by auto)" if args.memory == "auto" else "")
    summary = f"{precision} on {options.torch_device()}, memory plan {plan}, quantization {args.quantization}"
    return pipe, summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.model is None:
        if DEFAULT_MODEL not in PRESETS:
            parser.error(
                f"no --model given, and this copy has no bundled '{DEFAULT_MODEL}' model (known presets: "
                f"{', '.join(PRESETS)}). Pass --model with a preset or a pipeline folder written by save_pretrained."
            )
        args.model = DEFAULT_MODEL
    compute = ComputeThread()
    try:
        pipe, summary = compute.run(load_model, args)
    except (OSError, ValueError) as error:
        sys.stderr.write(f"error: could not load the model {args.model}: {error}\n")
        return 3
    logger.info("loaded %s (%s)", args.model, summary)
    demo = build_demo(pipe, model_name=args.model, load_summary=summary, compute=compute)
    serve(demo, host=args.host, port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
