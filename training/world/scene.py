"""What a clip shows: sprites moving over a textured background, seen through a panning and zooming camera.

World coordinates are resolution free: one world unit is the short side of the frame at zoom 1, and the camera
at ``(x, y)`` looks at the centre of the frame. Time is counted in frames, so velocities are per frame. Every
dataclass is frozen; edits build new scenes with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from .palette import BACKGROUND_TONES, BACKGROUNDS, COLOUR_NAMES, RGB, SHAPES, SIZE_RANGE, STYLE_NAMES, TONE_NAMES
from .shapes import RADIUS

logger = logging.getLogger(__name__)

IN_VIEW_MARGIN = 0.04


@dataclass(frozen=True)
class Sprite:
    """One object: a coloured shape on a straight path, optionally hopping and spinning.

    size: diameter in world units. x, y: centre at frame 0; vx, vy: world units per frame. angle: degrees at
    frame 0, spin: degrees per frame. bounce: hop height in world units, bounce_period: frames per hop.
    """

    shape: str
    colour: str
    size: float
    x: float
    y: float
    vx: float = 0.0
    vy: float = 0.0
    angle: float = 0.0
    spin: float = 0.0
    bounce: float = 0.0
    bounce_period: float = 16.0
    bounce_phase: float = 0.0

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; known: {SHAPES}")
        if self.colour not in COLOUR_NAMES:
            raise ValueError(f"unknown colour {self.colour!r}; known: {COLOUR_NAMES}")
        if not self.size > 0:
            raise ValueError(f"sprite size must be positive, got {self.size}")

    def position(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """World centre at frame(s) ``t``."""
        t = np.asarray(t, np.float64)
        x = self.x + self.vx * t
        y = self.y + self.vy * t
        if self.bounce:
            y = y - self.bounce * np.abs(np.sin(np.pi * t / self.bounce_period + self.bounce_phase))
        return x, y

    def rotation(self, t: np.ndarray | float) -> np.ndarray:
        return self.angle + self.spin * np.asarray(t, np.float64)

    @property
    def radius(self) -> float:
        """Farthest extent from the centre, world units."""
        return RADIUS[self.shape] * self.size

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Background:
    """A two-tone texture fixed in the world (so it moves with the camera).

    period: world units per texture cycle (stripes, checker, dots) or per one-way blend (gradient).
    angle: degrees, direction of stripes and gradient. phase: texture offset in cycles. dot_radius: fraction of the
    period. A plain background uses colour_a only.
    """

    kind: str
    colour_a: RGB
    colour_b: RGB
    period: float = 0.18
    angle: float = 0.0
    phase: tuple[float, float] = (0.0, 0.0)
    dot_radius: float = 0.28

    def __post_init__(self) -> None:
        if self.kind not in BACKGROUNDS:
            raise ValueError(f"unknown background {self.kind!r}; known: {BACKGROUNDS}")


@dataclass(frozen=True)
class Camera:
    """Looks at ``(x, y)`` at frame 0, pans by ``(vx, vy)`` per frame, zooms by ``exp(zoom_rate)`` per frame."""

    x: float = 0.0
    y: float = 0.0
    vx: float = 0.0
    vy: float = 0.0
    zoom: float = 1.0
    zoom_rate: float = 0.0

    def at(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(centre x, centre y, zoom) at frame(s) ``t``."""
        t = np.asarray(t, np.float64)
        return self.x + self.vx * t, self.y + self.vy * t, self.zoom * np.exp(self.zoom_rate * t)


@dataclass(frozen=True)
class Scene:
    background: Background
    sprites: tuple[Sprite, ...] = ()
    camera: Camera = field(default_factory=Camera)
    style: str | None = None

    def __post_init__(self) -> None:
        if self.style is not None and self.style not in STYLE_NAMES:
            raise ValueError(f"unknown style {self.style!r}; known: {STYLE_NAMES}")
        if not isinstance(self.sprites, tuple):
            object.__setattr__(self, "sprites", tuple(self.sprites))


def view_half_extent(aspect: float, zoom: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Half width and half height of the view in world units, for a frame of ``width / height == aspect``."""
    zoom = np.asarray(zoom, np.float64)
    wide, tall = (aspect, 1.0) if aspect >= 1 else (1.0, 1.0 / aspect)
    return 0.5 * wide / zoom, 0.5 * tall / zoom


def sprite_in_view(
    scene: Scene, sprite: Sprite, t: np.ndarray, aspect: float = 1.0, margin: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(fully inside, at least partly inside) the view at frames ``t``, with ``margin`` world units of slack."""
    t = np.asarray(t, np.float64)
    cx, cy, zoom = scene.camera.at(t)
    hx, hy = view_half_extent(aspect, zoom)
    x, y = sprite.position(t)
    dx, dy = np.abs(x - cx), np.abs(y - cy)
    r = sprite.radius
    fully = (dx + r + margin <= hx) & (dy + r + margin <= hy)
    partly = (dx - r < hx) & (dy - r < hy)
    return fully, partly


def random_background(
    rng: np.random.Generator, kind: str | None = None, avoid: Background | None = None
) -> Background:
    """A random background; with ``avoid``, one of another kind whose tones differ from it (a visible cut)."""
    kinds = [k for k in BACKGROUNDS if avoid is None or k != avoid.kind]
    kind = kind if kind is not None else str(rng.choice(kinds))
    used = set() if avoid is None else {avoid.colour_a, avoid.colour_b}
    tones = [t for t in TONE_NAMES if not set(BACKGROUND_TONES[t]) & used] or list(TONE_NAMES)
    tone_a, tone_b = (str(t) for t in rng.choice(tones, 2))
    dark, light = BACKGROUND_TONES[tone_a][0], BACKGROUND_TONES[tone_b][1]
    if kind == "plain":
        colour = BACKGROUND_TONES[tone_a][int(rng.integers(2))]
        return Background("plain", colour, colour)
    # Either tone may be the pattern (light dots on dark or dark dots on light, and so on).
    if rng.random() < 0.5:
        dark, light = light, dark
    phase = (float(rng.random()), float(rng.random()))
    if kind == "stripes":
        return Background(kind, dark, light, float(rng.uniform(0.14, 0.22)), float(rng.uniform(0, 180)), phase)
    if kind == "checker":
        angle = float(rng.choice([0.0, 45.0]))
        return Background(kind, dark, light, float(rng.uniform(0.18, 0.26)), angle, phase)
    if kind == "dots":
        period, radius = float(rng.uniform(0.16, 0.24)), float(rng.uniform(0.22, 0.32))
        return Background(kind, dark, light, period, 0.0, phase, radius)
    return Background(kind, dark, light, float(rng.uniform(0.8, 1.2)), float(rng.uniform(0, 360)), phase)


def restyled_background(old: Background, kind: str) -> Background:
    """``old``'s tones in the texture ``kind``, laid out in one fixed way (no random period, angle or phase).

    "Make the background striped" names the texture only: keeping the tones and fixing the layout makes the target
    follow from the instruction and the source. A plain source lends its tone's dark and light variants.
    """
    if kind not in BACKGROUNDS:
        raise ValueError(f"unknown background {kind!r}; known: {BACKGROUNDS}")
    dark, light = old.colour_a, old.colour_b
    if dark == light:
        dark, light = next((pair for pair in BACKGROUND_TONES.values() if old.colour_a in pair), (dark, light))
    if kind == "plain":
        return Background("plain", dark, dark)
    period = {"stripes": 0.18, "checker": 0.22, "dots": 0.2, "gradient": 1.0}[kind]
    return Background(kind, dark, light, period, dot_radius=0.27)  # angle and phase 0


def random_camera(rng: np.random.Generator, num_frames: int, motion: float = 1.0) -> Camera:
    """Slow pan and zoom: at most ~0.15 world units of pan and ~15% zoom over the clip."""
    frames = max(num_frames, 1)
    speed = min(0.003 * motion, 0.15 / frames) * np.sqrt(rng.random())
    heading = rng.uniform(0, 2 * np.pi)
    zoom_rate = rng.uniform(-1, 1) * min(0.004 * motion, np.log(1.15) / frames)
    return Camera(
        x=float(rng.uniform(-2, 2)), y=float(rng.uniform(-2, 2)),
        vx=float(speed * np.cos(heading)), vy=float(speed * np.sin(heading)),
        zoom=float(rng.uniform(0.92, 1.08)), zoom_rate=float(zoom_rate),
    )  # fmt: skip


def random_sprite(
    rng: np.random.Generator, colour: str, x: float, y: float, max_speed: float, shape: str | None = None
) -> Sprite:
    """A sprite at ``(x, y)`` with random shape (unless given), size, heading, speed up to ``max_speed``, spin and
    hop."""
    heading = rng.uniform(0, 2 * np.pi)
    speed = max_speed * np.sqrt(rng.random())
    hop = rng.random() < 0.25
    return Sprite(
        shape=shape or str(rng.choice(SHAPES)), colour=colour, size=float(rng.uniform(*SIZE_RANGE)),
        x=x, y=y, vx=float(speed * np.cos(heading)), vy=float(speed * np.sin(heading)),
        angle=float(rng.uniform(0, 360)), spin=float(rng.uniform(-2, 2)) if rng.random() < 0.3 else 0.0,
        bounce=float(rng.uniform(0.01, 0.03)) if hop else 0.0, bounce_period=float(rng.uniform(10, 30)),
        bounce_phase=float(rng.uniform(0, np.pi)),
    )  # fmt: skip


def fits(scene: Scene, sprite: Sprite, num_frames: int, aspect: float = 1.0, gap: float = 0.05) -> bool:
    """``sprite`` stays fully in view for the clip and keeps ``gap`` world units from every sprite of ``scene``."""
    t = np.arange(max(num_frames, 1), dtype=np.float64)
    # The margin keeps anti-aliased edges off the border, where the describer would call the sprite partial.
    fully, _ = sprite_in_view(scene, sprite, t, aspect, margin=IN_VIEW_MARGIN)
    if not fully.all():
        return False
    x, y = sprite.position(t)
    for other in scene.sprites:
        ox, oy = other.position(t)
        if (np.hypot(x - ox, y - oy) < sprite.radius + other.radius + gap).any():
            return False
    return True


def place_sprite(
    rng: np.random.Generator, scene: Scene, colour: str, num_frames: int, aspect: float = 1.0,
    motion: float = 1.0, shape: str | None = None, tries: int = 60,
) -> Sprite | None:  # fmt: skip
    """A random sprite that :func:`fits` the scene, or None when none was found in ``tries`` attempts."""
    max_speed = min(0.006 * motion, 0.3 / max(num_frames, 1))
    cx, cy, zoom = scene.camera.at(0.0)
    hx, hy = view_half_extent(aspect, zoom)
    for _ in range(tries):
        x = float(cx + rng.uniform(-hx, hx) * 0.8)
        y = float(cy + rng.uniform(-hy, hy) * 0.8)
        sprite = random_sprite(rng, colour, x, y, max_speed, shape)
        if fits(scene, sprite, num_frames, aspect):
            return sprite
    return None


def random_scene(
    rng: np.random.Generator,
    *,
    num_sprites: int | None = None,
    num_frames: int = 9,
    aspect: float = 1.0,
    motion: float = 1.0,
    camera_motion: float = 1.0,
    style_prob: float = 0.0,
    background: str | None = None,
) -> Scene:
    """A scene whose sprites (1-3 unless ``num_sprites``, distinct colours) stay in view and apart for the clip.

    When the view is too crowded for ``num_sprites``, fewer are placed (logged at debug level).
    """
    count = int(rng.integers(1, 4)) if num_sprites is None else num_sprites
    scene = Scene(
        background=random_background(rng, kind=background),
        camera=random_camera(rng, num_frames, camera_motion),
        style=str(rng.choice(STYLE_NAMES)) if rng.random() < style_prob else None,
    )
    colours = rng.permutation(COLOUR_NAMES)[:count]
    sprites: list[Sprite] = []
    for colour in colours:
        sprite = place_sprite(rng, Scene(scene.background, tuple(sprites), scene.camera), str(colour), num_frames,
                              aspect, motion)  # fmt: skip
        if sprite is None:
            logger.debug("no room for a %s sprite after %d placed", colour, len(sprites))
            break
        sprites.append(sprite)
    return Scene(scene.background, tuple(sprites), scene.camera, scene.style)
