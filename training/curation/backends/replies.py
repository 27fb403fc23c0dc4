"""What the vision-language describers ask, and how their replies are read.

A request is a list of parts, each a text or a frame (`uint8 [H, W, 3]`): the sampled frames of each clip behind a
short label, then the filled prompt file. Every describer backed by a vision-language model (a chat endpoint, a
local model) turns those parts into its own message format and hands back the model's text; `PromptedDescriber`
does the rest, so that all of them ask the same questions and read the answers the same way.

Replies are read leniently, because models wrap JSON in fences or prose, write scores as strings and vary the
case of keys, and strictly in what comes out: anything that cannot be used is a `BackendReplyError`, which the
curation pipeline counts as a dropped record.
"""

from __future__ import annotations

import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from .base import (
    JUDGE_CRITERIA,
    BackendConfig,
    BackendReplyError,
    Change,
    check_judge_scores,
    load_prompt,
    sample_frames,
)

logger = logging.getLogger(__name__)

EDIT_TYPES = ("add", "remove", "replace", "recolour", "background", "style", "change")
# Spellings models use for an edit type, beyond the canonical names.
EDIT_TYPE_ALIASES = {"recolor": "recolour", "color": "recolour", "colour": "recolour", "color_change": "recolour"}
NO_CHANGE = {"none", "no_change", "no_edit", "nothing", "null", "unchanged"}  # after normalise_key
MAX_CAPTION_CHARS = 1000

Part = str | np.ndarray

_FENCE = re.compile(r"```[A-Za-z]*[ \t]*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_SCORE_TEXT = re.compile(r"^\s*([0-9]+(?:\.0*)?)\s*(?:/\s*3)?\s*$")
_CAPTION_PREFIX = re.compile(r"^\s*(?:caption|description|answer)\s*:\s*", re.IGNORECASE)
_SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})


def check_clip(frames: np.ndarray, name: str) -> None:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        shape = getattr(frames, "shape", type(frames).__name__)
        raise ValueError(f"{name} must be uint8 [F, H, W, 3] with F >= 1, got {shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {frames.dtype}")


def fill_prompt(template: str, name: str, **values: object) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError) as error:
        known = ", ".join(sorted(values))
        raise ValueError(f"prompt {name!r} uses an unknown placeholder {error}; known: {known}") from None


class PromptedDescriber(ABC):
    """A `Describer` over any model that answers a list of parts with text; subclasses implement `ask`."""

    def __init__(self, config: BackendConfig, name: str) -> None:
        self.config = config
        self.name = name
        # Read now so that a missing prompt file stops the run before any clip is processed.
        self.prompts = {key: load_prompt(config, key) for key in ("caption", "change", "judge", "edit_caption")}

    @abstractmethod
    def ask(self, parts: Sequence[Part]) -> str:
        """The model's reply text to one user turn made of `parts`."""

    def sample(self, frames: np.ndarray, name: str) -> np.ndarray:
        check_clip(frames, name)
        return sample_frames(frames, self.config.max_frames)

    def caption_request(self, frames: np.ndarray) -> list[Part]:
        shown = self.sample(frames, "frames")
        prompt = fill_prompt(self.prompts["caption"], "caption", num_frames=len(shown))
        return ["Frames of the clip, in order:", *shown, prompt]

    def change_request(self, source: np.ndarray, target: np.ndarray) -> list[Part]:
        a, b = self.sample(source, "source"), self.sample(target, "target")
        prompt = fill_prompt(self.prompts["change"], "change", num_source_frames=len(a), num_target_frames=len(b))
        return ["Clip A, frames in order:", *a, "Clip B, frames in order:", *b, prompt]

    def judge_request(self, source: np.ndarray, edited: np.ndarray, instruction: str) -> list[Part]:
        a, b = self.sample(source, "source"), self.sample(edited, "edited")
        prompt = fill_prompt(
            self.prompts["judge"],
            "judge",
            instruction=instruction,
            num_source_frames=len(a),
            num_edited_frames=len(b),
        )
        return ["Source clip, frames in order:", *a, "Edited clip, frames in order:", *b, prompt]

    def edit_caption_request(self, frames: np.ndarray, object_label: str, edit_type: str) -> list[Part]:
        shown = self.sample(frames, "frames")
        prompt = fill_prompt(
            self.prompts["edit_caption"], "edit_caption",
            num_frames=len(shown), object_label=object_label, edit_type=edit_type,
        )  # fmt: skip
        return ["Frames of the clip, in order:", *shown, prompt]

    def caption(self, frames: np.ndarray) -> str:
        return parse_caption(self.ask(self.caption_request(frames)), self.name)

    def propose_edit(self, frames: np.ndarray, object_label: str, edit_type: str, seed: int) -> str | None:
        # Sampling is greedy, so the seed has nothing to vary here.
        reply = self.ask(self.edit_caption_request(frames, object_label, edit_type))
        if reply.strip().strip(".").lower() in NO_CHANGE:
            return None
        return parse_caption(reply, self.name)

    def describe_change(self, source: np.ndarray, target: np.ndarray, seed: int | None = None) -> Change | None:
        # Greedy sampling again: the wording is the model's own, whatever the seed.
        return parse_change(self.ask(self.change_request(source, target)), self.name)

    def judge(self, source: np.ndarray, edited: np.ndarray, instruction: str) -> dict[str, int]:
        return parse_judge(self.ask(self.judge_request(source, edited, instruction)), self.name)


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def normalise_key(key: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(key).strip().lower())


def extract_json_object(reply: str, source: str) -> dict:
    """The first JSON object in `reply`, looking inside ``` fences first, then anywhere in the text."""
    if not isinstance(reply, str) or not reply.strip():
        raise BackendReplyError(f"{source}: empty reply")
    text = reply.translate(_SMART_QUOTES)
    candidates = [match.group(1) for match in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for start in (index for index, char in enumerate(candidate) if char == "{"):
            for attempt in (candidate[start:], _TRAILING_COMMA.sub(r"\1", candidate[start:])):
                try:
                    value, _ = decoder.raw_decode(attempt)
                except json.JSONDecodeError:
                    continue
                if isinstance(value, dict):
                    return {normalise_key(key): item for key, item in value.items()}
    raise BackendReplyError(f"{source}: no JSON object in reply {_shorten(reply)!r}")


def parse_caption(reply: str, source: str) -> str:
    """One caption line: fences, quotes and a "Caption:" prefix stripped, whitespace collapsed."""
    if not isinstance(reply, str):
        raise BackendReplyError(f"{source}: reply is {type(reply).__name__}, not text")
    text = reply.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    if text.startswith("{"):
        # Some models answer in JSON even when asked for plain text; a JSON answer must hold the caption.
        try:
            data = extract_json_object(text, source)
        except BackendReplyError:
            data = None
        if data is not None:
            fields = [data[key] for key in ("caption", "description", "text") if isinstance(data.get(key), str)]
            text = fields[0] if fields else ""
    text = _CAPTION_PREFIX.sub("", " ".join(text.split()))
    text = text.strip().strip("\"'`").strip()
    if not text or not any(char.isalpha() for char in text):
        raise BackendReplyError(f"{source}: no caption in reply {_shorten(reply)!r}")
    if len(text) > MAX_CAPTION_CHARS:
        raise BackendReplyError(f"{source}: caption of {len(text)} characters is not one sentence")
    return text


def parse_change(reply: str, source: str) -> Change | None:
    """`{"edit_type", "instruction"}` as a Change; None for edit_type "none"."""
    data = extract_json_object(reply, source)
    edit_type = data.get("edit_type", data.get("type"))
    if edit_type is None and "edit_type" in data:
        return None
    if not isinstance(edit_type, str):
        raise BackendReplyError(f"{source}: edit_type must be a string, got {edit_type!r} in {_shorten(reply)!r}")
    edit_type = normalise_key(edit_type)
    if edit_type in NO_CHANGE:
        return None
    edit_type = EDIT_TYPE_ALIASES.get(edit_type, edit_type)
    if edit_type not in EDIT_TYPES:
        raise BackendReplyError(f"{source}: edit_type {edit_type!r} is not one of {', '.join(EDIT_TYPES)} or none")
    instruction = data.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise BackendReplyError(f"{source}: a {edit_type} edit needs a non-empty instruction, got {instruction!r}")
    return Change(edit_type=edit_type, instruction=" ".join(instruction.split()))


def _score_value(value: object) -> object:
    """A score written as text ("2", "2.0", "2/3") as an int; anything else unchanged for the range check."""
    if isinstance(value, str):
        match = _SCORE_TEXT.match(value)
        if match:
            return int(float(match.group(1)))
    return value


def parse_judge(reply: str, source: str) -> dict[str, int]:
    """The three rubric scores as ints 0-3, from the reply's JSON (top level or one nested object)."""
    data = extract_json_object(reply, source)
    if not any(name in data for name in JUDGE_CRITERIA):
        # Models sometimes nest the scores: {"scores": {...}, "reason": ...}.
        for value in data.values():
            if isinstance(value, dict):
                nested = {normalise_key(key): item for key, item in value.items()}
                if any(name in nested for name in JUDGE_CRITERIA):
                    data = nested
                    break
    scores = {name: _score_value(data.get(name)) for name in JUDGE_CRITERIA}
    return check_judge_scores(scores, source)
