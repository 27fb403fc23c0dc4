"""Words for the world: phrasing edit instructions (varied or canonical) and parsing them back into intents.

The same vocabulary serves the instruction writer (:func:`phrase`), the describer (canonical phrasing, or the
training templates with an rng) and the verifier (:func:`parse_instruction`), so everything one writes the other
reads.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from .palette import BACKGROUNDS, COLOUR_NAMES, SHAPES, STYLE_NAMES

logger = logging.getLogger(__name__)

SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "disk", "ball"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle",),
    "star": ("star",),
    "ring": ("ring", "donut", "doughnut", "hoop"),
}
COLOUR_WORDS: dict[str, tuple[str, ...]] = {name: (name,) for name in COLOUR_NAMES} | {"purple": ("purple", "violet")}
BACKGROUND_WORDS: dict[str, tuple[str, ...]] = {
    "plain": ("plain", "solid", "flat"),
    "stripes": ("stripes", "striped", "stripy", "stripe"),
    "checker": ("checkerboard", "checkered", "checker", "chequered", "checks"),
    "dots": ("dots", "dotted", "polka", "spotted"),
    "gradient": ("gradient",),
}
STYLE_WORDS: dict[str, tuple[str, ...]] = {
    "night": ("night", "nighttime", "midnight"),
    "sunset": ("sunset", "golden", "dusk"),
    "faded": ("faded", "fade", "washed", "vintage"),
}
# Nouns and adjectives for the backgrounds, as an instruction writer would use them.
BACKGROUND_NOUN = {"plain": "a plain colour", "stripes": "stripes", "checker": "a checkerboard",
                   "dots": "polka dots", "gradient": "a smooth gradient"}  # fmt: skip
BACKGROUND_ADJ = {"plain": "plain", "stripes": "striped", "checker": "checkered", "dots": "polka-dot",
                  "gradient": "gradient"}  # fmt: skip

_REMOVE_WORDS = {"remove", "delete", "erase", "rid", "disappear", "eliminate", "out", "vanish"}
_ADD_WORDS = {"add", "insert", "put", "place", "appear", "include", "there"}
_WILDCARD_SHAPES = {"one", "object", "shape", "thing"}
_LOCATION_WORDS = {"left": "left", "right": "right", "top": "top", "bottom": "bottom", "middle": "centre",
                   "centre": "centre", "center": "centre", "upper": "top", "lower": "bottom"}  # fmt: skip


def _lookup(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {word: name for name, words in table.items() for word in words}


_SHAPE_OF, _COLOUR_OF = _lookup(SHAPE_WORDS), _lookup(COLOUR_WORDS)
_BACKGROUND_OF, _STYLE_OF = _lookup(BACKGROUND_WORDS), _lookup(STYLE_WORDS)
_word_tables = (set(SHAPE_WORDS), set(BACKGROUND_WORDS), set(STYLE_WORDS))
if _word_tables != (set(SHAPES), set(BACKGROUNDS), set(STYLE_NAMES)):
    raise ValueError("the word tables must cover exactly the palette's shapes, backgrounds and styles")


@dataclass(frozen=True)
class Intent:
    """What an instruction asks for. None fields are unspecified (e.g. "the circle": any colour)."""

    type: str
    colour: str | None = None
    shape: str | None = None
    new_colour: str | None = None
    new_shape: str | None = None
    background: str | None = None
    style: str | None = None
    location: str | None = None


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def location_name(x: float, y: float) -> str:
    """ "top left", "left", "centre", ... for a point in frame fractions (0-1, y down)."""
    horizontal = "left" if x < 0.4 else "right" if x > 0.6 else ""
    vertical = "top" if y < 0.4 else "bottom" if y > 0.6 else ""
    return f"{vertical} {horizontal}".strip() or "centre"


def location_matches(location: str, x: float, y: float, slack: float = 0.1) -> bool:
    """Whether a point (frame fractions) lies on the named side(s), with ``slack`` past the midline allowed."""
    words = location.split()
    checks = {
        "left": x < 0.5 + slack, "right": x > 0.5 - slack, "top": y < 0.5 + slack, "bottom": y > 0.5 - slack,
        "centre": abs(x - 0.5) < 0.2 + slack and abs(y - 0.5) < 0.2 + slack,
    }  # fmt: skip
    return all(checks[w] for w in words)


def _location_phrase(location: str, rng: np.random.Generator | None) -> str:
    if location == "centre":
        return _choose(rng, ["in the centre", "in the middle", "in the center"])
    if " " in location:
        return f"in the {location}"
    preposition = "on the" if location in ("left", "right") else "at the"
    return f"{preposition} {location}"


def noun_phrase(colour: str | None, shape: str | None, rng: np.random.Generator | None = None) -> str:
    """Name an object: "red circle", "red disc" (with rng, sometimes a synonym), "red one", "circle"."""
    if shape is None:
        return f"{colour} one"
    word = shape if rng is None or rng.random() < 0.75 else str(rng.choice(SHAPE_WORDS[shape]))
    return f"{colour} {word}" if colour else word


PHRASINGS = ("all", "train", "heldout")


def _choose(rng: np.random.Generator | None, options: list[str], phrasing: str = "all") -> str:
    """One of `options`: the first without rng. The last template of each list is held out of `phrasing="train"`
    and is all that `"heldout"` uses, so a benchmark can ask in words no training pair used."""
    if rng is None:
        return options[0]
    if len(options) > 1 and phrasing == "train":
        options = options[:-1]
    elif len(options) > 1 and phrasing == "heldout":
        options = options[-1:]
    return str(rng.choice(options))


def phrase(
    intent: Intent, rng: np.random.Generator | None = None, *, old: str | None = None, phrasing: str = "all"
) -> str:
    """An instruction for ``intent``: the canonical one without ``rng``, a random phrasing with it.

    old: how to refer to the edited object ("the red circle" by default).
    phrasing: "all" templates, the "train" ones, or the "heldout" ones (see `_choose`).
    """
    if phrasing not in PHRASINGS:
        raise ValueError(f"phrasing={phrasing!r} must be one of {PHRASINGS}")
    old = old or f"the {noun_phrase(intent.colour, intent.shape, rng)}"
    spelling = "colour" if rng is None or rng.random() < 0.5 else "color"
    if intent.type == "recolour":
        c = intent.new_colour
        text = _choose(rng, phrasing=phrasing, options=[
            f"make {old} {c}", f"turn {old} {c}", f"change {old}'s {spelling} to {c}",
            f"change the {spelling} of {old} to {c}", f"paint {old} {c}", f"re{spelling} {old} {c}",
            f"{old} should be {c}", f"give {old} a {c} {spelling}",
        ])  # fmt: skip
    elif intent.type == "replace":
        noun = noun_phrase(intent.new_colour, intent.new_shape, rng)
        new = f"{article(noun)} {noun}"
        text = _choose(rng, phrasing=phrasing, options=[
            f"replace {old} with {new}", f"swap {old} for {new}", f"turn {old} into {new}",
            f"change {old} into {new}", f"put {new} where {old} is", f"instead of {old}, show {new}",
        ])  # fmt: skip
    elif intent.type == "remove":
        text = _choose(rng, phrasing=phrasing, options=[
            f"remove {old}", f"delete {old}", f"take out {old}", f"get rid of {old}", f"erase {old}",
            f"make {old} disappear", f"remove {old} from the video", f"take {old} out of the scene",
        ])  # fmt: skip
    elif intent.type == "add":
        noun = noun_phrase(intent.colour, intent.shape, rng) if intent.shape else f"{intent.colour} shape"
        new = f"{article(noun)} {noun}"
        where = f" {_location_phrase(intent.location, rng)}" if intent.location else ""
        text = _choose(rng, phrasing=phrasing, options=[
            f"add {new}{where}", f"insert {new}{where}", f"put {new}{where}", f"place {new}{where}",
            f"make {new} appear{where}", f"there should be {new}{where}", f"include {new}{where}",
        ])  # fmt: skip
    elif intent.type == "background":
        kind = intent.background
        noun, adj = BACKGROUND_NOUN[kind], BACKGROUND_ADJ[kind]
        text = _choose(rng, phrasing=phrasing, options=[
            f"change the background to {noun}", f"make the background {adj}", f"use {article(adj)} {adj} background",
            f"switch to {article(adj)} {adj} background", f"replace the background with {noun}",
            f"give it {article(adj)} {adj} background",
        ])  # fmt: skip
    elif intent.type == "style":
        text = _style_phrase(intent.style, rng, phrasing)
    else:
        raise ValueError(f"unknown edit type {intent.type!r}")
    if rng is not None:
        if rng.random() < 0.5:
            text = text[0].upper() + text[1:]
        if rng.random() < 0.3:
            text += "."
    return text


def _style_phrase(style: str | None, rng: np.random.Generator | None, phrasing: str = "all") -> str:
    if style is None:
        return _choose(
            rng, ["remove the filter", "make the colours look natural again", "undo the colour filter"], phrasing
        )
    options = {
        "night": ["make it look like night", "turn it into a night scene", "make it nighttime",
                  "give it a night look", "make it look like it was filmed at night"],
        "sunset": ["make it look like sunset", "give it a warm sunset glow", "bathe the scene in golden sunset light",
                   "make it look like it was filmed at sunset"],
        "faded": ["make it look faded", "give it a washed-out look", "make it look like an old faded film",
                  "fade the colours"],
    }  # fmt: skip
    return _choose(rng, options[style], phrasing)


def parse_instruction(text: str) -> Intent | None:
    """The intent of an instruction in the phrasings above (and close variants), or None if it is not one."""
    tokens = re.findall(r"[a-z]+", text.lower())
    objects: list[tuple[int, str | None, str | None]] = []
    bare_colours: list[str] = []
    for i, token in enumerate(tokens):
        shape = _SHAPE_OF.get(token)
        if shape is None and token in _WILDCARD_SHAPES and i > 0 and tokens[i - 1] in _COLOUR_OF:
            objects.append((i, _COLOUR_OF[tokens[i - 1]], None))
        elif shape is not None:
            colour = _COLOUR_OF.get(tokens[i - 1]) if i > 0 else None
            objects.append((i, colour, shape))
        elif token in _COLOUR_OF:
            follows = tokens[i + 1] if i + 1 < len(tokens) else ""
            if follows not in _SHAPE_OF and follows not in _WILDCARD_SHAPES:
                bare_colours.append(_COLOUR_OF[token])
    words = set(tokens)
    if not objects:
        if words & {"background", "backdrop", "backround"}:
            kinds = [_BACKGROUND_OF[t] for t in tokens if t in _BACKGROUND_OF]
            return Intent("background", background=kinds[0]) if kinds else None
        styles = [_STYLE_OF[t] for t in tokens if t in _STYLE_OF]
        if styles:
            return Intent("style", style=styles[0])
        if words & {"filter", "natural", "normal"}:
            return Intent("style", style=None)
        return None
    _, colour, shape = objects[0]
    if words & _REMOVE_WORDS and len(objects) == 1 and not bare_colours:
        return Intent("remove", colour, shape)
    if len(objects) >= 2:
        (_, c0, s0), (_, c1, s1) = objects[0], objects[1]
        if "where" in words:
            (c0, s0), (c1, s1) = (c1, s1), (c0, s0)
        return Intent("replace", c0, s0, new_colour=c1 or c0, new_shape=s1)
    if bare_colours:
        return Intent("recolour", colour, shape, new_colour=bare_colours[-1])
    if words & _ADD_WORDS:
        after = tokens[objects[0][0] + 1 :]
        found = [_LOCATION_WORDS[t] for t in after if t in _LOCATION_WORDS]
        location = None
        if found:
            vertical = next((w for w in found if w in ("top", "bottom")), "")
            horizontal = next((w for w in found if w in ("left", "right")), "")
            location = f"{vertical} {horizontal}".strip() or "centre"
        return Intent("add", colour, shape, location=location)
    return None
