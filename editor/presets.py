"""What a model is: its sampling defaults and output geometry, defined once per preset.

A pipeline carries its `EditDefaults` in its saved config, so a directory written by `save_pretrained` edits with
the settings it was made with; a call's arguments override them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class EditDefaults:
    """Sampling settings and output geometry a model edits with unless a call says otherwise.

    `height * width` is the target area: a source of another aspect ratio keeps its aspect at about that area.
    `num_frames` is the most frames edited; shorter sources use what they have. `fps` is the frame rate the model was
    trained at: sources are resampled to it.
    """

    num_inference_steps: int
    guidance_scale: float
    embedded_guidance_scale: float
    height: int
    width: int
    num_frames: int
    fps: float
    negative_prompt: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> EditDefaults:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown edit defaults {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


@dataclass(frozen=True)
class ModelPreset:
    """A named model: where its parts come from, its flow-matching shift (a scheduler setting), its edit defaults.

    `base` holds the VAE and text encoders in diffusers' HunyuanVideo layout; `transformer` the DiT weights (original
    or diffusers layout). Each is a Hugging Face Hub id, used only where the hub is reachable, or a local folder.
    A `bundled` model is one pipeline folder inside the repository, trained by the project; its flow shift and
    defaults live in the folder and the preset's copy documents them.
    """

    name: str
    flow_shift: float
    defaults: EditDefaults
    base: str | None = None
    transformer: str | None = None
    # A whole pipeline folder that ships with the project, relative to the repository: base and transformer unused.
    bundled: str | None = None


# A bundled model's benchmark page, which its recipe ships beside the model card (training.json).
BENCHMARK_PAGE = "benchmark.md"


# ICVE's official inference settings: 50 Euler steps, real CFG 6.0 with the source kept in the unconditional branch,
# embedded guidance 1.0, shift 7.0, 768 (h) x 480 (w), 61 frames at HunyuanVideo's 24 fps.
ICVE = ModelPreset(
    name="icve",
    base="hunyuanvideo-community/HunyuanVideo",
    transformer="leoisufa/ICVE",
    flow_shift=7.0,
    defaults=EditDefaults(
        num_inference_steps=50,
        guidance_scale=6.0,
        embedded_guidance_scale=1.0,
        height=768,
        width=480,
        num_frames=61,
        fps=24.0,
    ),
)

# The small model of ICVE's architecture that the project trains on its procedural world (training/recipes/demo.py)
# and ships in assets/: it edits on a CPU in seconds, with nothing to download.
DEMO = ModelPreset(
    name="demo",
    bundled="assets/demo-model",
    flow_shift=2.0,
    defaults=EditDefaults(
        num_inference_steps=10,
        guidance_scale=2.0,
        embedded_guidance_scale=1.0,
        height=64,
        width=64,
        num_frames=9,
        fps=4.5,
    ),
)

DEFAULT_MODEL = DEMO.name
PRESETS: dict[str, ModelPreset] = {DEMO.name: DEMO, ICVE.name: ICVE}
