"""Curation backends: the describer, segmenter and inpainter named by a `BackendConfig`, built by kind.

| kind | describer | segmenter | inpainter |
|---|---|---|---|
| `world` | `WorldDescriber` | `WorldSegmenter` | `WorldInpainter` |
| `chat` | `ChatDescriber` (an OpenAI-compatible endpoint) | - | - |
| `transformers` | `LocalVLMDescriber` | `LocalSegmenter` | `VaceInpainter` (Wan-VACE, diffusers) |

Backends are imported only when built, so that choosing `world` or `chat` never imports torch models.
"""

from __future__ import annotations

import importlib

from .base import (
    JUDGE_CRITERIA,
    BackendConfig,
    BackendReplyError,
    Change,
    Describer,
    Inpainter,
    SegmentedObject,
    Segmenter,
)

KINDS = ("world", "chat", "transformers")

# job -> kind -> (module, class)
_BACKENDS: dict[str, dict[str, tuple[str, str]]] = {
    "describer": {
        "world": (".world", "WorldDescriber"),
        "chat": (".chat", "ChatDescriber"),
        "transformers": (".local_vlm", "LocalVLMDescriber"),
    },
    "segmenter": {
        "world": (".world", "WorldSegmenter"),
        "transformers": (".local_segmenter", "LocalSegmenter"),
    },
    "inpainter": {
        "world": (".world", "WorldInpainter"),
        "transformers": (".vace", "VaceInpainter"),
    },
}


def _build(job: str, config: BackendConfig):
    choices = _BACKENDS[job]
    if config.kind not in choices:
        if config.kind in KINDS:
            able = ", ".join(repr(kind) for kind in choices)
            raise ValueError(f"backend kind {config.kind!r} cannot be a {job}; a {job} is one of {able}")
        raise ValueError(f"unknown backend kind {config.kind!r}; known kinds: {', '.join(KINDS)}")
    module_name, class_name = choices[config.kind]
    backend = getattr(importlib.import_module(module_name, __name__), class_name)
    # The world's tools read everything from the clips themselves and take no configuration.
    return backend() if config.kind == "world" else backend(config)


def build_describer(config: BackendConfig) -> Describer:
    """The captioner, instruction writer and judge that `config` names."""
    return _build("describer", config)


def build_segmenter(config: BackendConfig) -> Segmenter:
    """The object segmenter that `config` names."""
    return _build("segmenter", config)


def build_inpainter(config: BackendConfig) -> Inpainter:
    """The masked re-renderer that `config` names."""
    return _build("inpainter", config)


__all__ = [
    "JUDGE_CRITERIA",
    "KINDS",
    "BackendConfig",
    "BackendReplyError",
    "Change",
    "Describer",
    "Inpainter",
    "SegmentedObject",
    "Segmenter",
    "build_describer",
    "build_inpainter",
    "build_segmenter",
]
