"""The model behind each curation step, behind one interface each, chosen in config.

* `Describer` writes captions, writes the instruction that turns one clip into another, and judges an edit (the
  captioner, instruction writer and VLM judge of the paper's figures).
* `Segmenter` finds objects and their masks in a clip.
* `Inpainter` re-renders a clip inside a mask from a caption (VACE in the paper).

Backends: `world` (the procedural world's pixel-based tools), `chat` (an OpenAI-compatible chat endpoint that takes
frames), `transformers` (a local model from a path). Every clip is `uint8 [F, H, W, 3]`, every mask `bool [F, H, W]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

JUDGE_CRITERIA = ("prompt_following", "edit_quality", "background_consistency")
PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"


class BackendReplyError(ValueError):
    """A model's reply that cannot be used (does not parse, is empty, is out of range)."""


@dataclass(frozen=True)
class Change:
    """What turns a source clip into a target clip."""

    edit_type: str
    instruction: str


@dataclass(frozen=True)
class SegmentedObject:
    label: str
    mask: np.ndarray  # bool [F, H, W]
    score: float


class Describer(Protocol):
    def caption(self, frames: np.ndarray) -> str: ...

    def describe_change(self, source: np.ndarray, target: np.ndarray, seed: int | None = None) -> Change | None:
        """The instruction that turns `source` into `target`; None when nothing visible changed.

        seed: None asks for the plainest wording; with a seed, a describer that can vary its wording draws one from
        it (the world's describer picks among its phrasings; the prompted VLMs answer at temperature 0 and word
        each change as they see it, so they ignore it)."""
        ...

    def judge(self, source: np.ndarray, edited: np.ndarray, instruction: str) -> dict[str, int]:
        """EditVerse's rubric: each of JUDGE_CRITERIA scored 0-3."""
        ...

    def propose_edit(self, frames: np.ndarray, object_label: str, edit_type: str, seed: int) -> str | None:
        """The caption of what the masked object should become for `edit_type` (the inpainter's prompt): another
        colour or object, or the background behind it for a removal. None when no sensible edit exists."""
        ...


class Segmenter(Protocol):
    def segment(self, frames: np.ndarray) -> list[SegmentedObject]: ...


class Inpainter(Protocol):
    def inpaint(self, frames: np.ndarray, mask: np.ndarray, caption: str, seed: int, **hints: object) -> np.ndarray:
        """Re-render `frames` inside `mask` as `caption` says. `hints` carry what a backend may use beyond pixels
        (the procedural world's scene seed and object index); other backends ignore them."""
        ...


@dataclass(frozen=True)
class BackendConfig:
    """Which backend, and where its model is.

    kind: "world", "chat" or "transformers".
    model: the model name at a chat endpoint, or a local folder for "transformers".
    url: the chat endpoint's base URL (e.g. http://localhost:8000/v1).
    api_key_env: environment variable holding the endpoint's key, if it needs one.
    prompts: folder of prompt files (defaults to the ones shipped beside the backends).
    max_frames: frames sampled from a clip for a vision-language model.
    timeout: seconds per request.
    """

    kind: str = "world"
    model: str | None = None
    url: str | None = None
    api_key_env: str | None = None
    prompts: Path | None = None
    max_frames: int = 4
    timeout: float = 120.0


def load_prompt(config: BackendConfig, name: str) -> str:
    """A prompt file by name (`caption`, `change`, `judge`), from the configured folder or the shipped one."""
    folder = config.prompts or PROMPTS_DIR
    path = Path(folder) / f"{name}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {path} not found")
    return path.read_text()


def sample_frames(frames: np.ndarray, count: int) -> np.ndarray:
    """`count` frames spread evenly over the clip, first and last included."""
    index = np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int)
    return frames[index]


def check_judge_scores(scores: dict, source: str) -> dict[str, int]:
    """Scores of JUDGE_CRITERIA as ints 0-3; anything else is a BackendReplyError naming what is wrong."""
    result = {}
    for name in JUDGE_CRITERIA:
        value = scores.get(name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 3:
            raise BackendReplyError(f"{source}: {name} must be an integer 0-3, got {value!r}")
        result[name] = value
    return result
