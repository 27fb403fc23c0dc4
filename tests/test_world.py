"""Tests for training.world: the procedural stand-in for real footage, its edits, describer and verifier.

Accuracy bounds are checked on fixed seeds. Each bound sits well under what was measured on much larger samples
(noted beside it), so the tests guard against regressions without depending on one lucky draw.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import numpy as np
import pytest

from training.metrics import psnr
from training.world import (
    EDIT_TYPES,
    Background,
    Camera,
    Scene,
    Sprite,
    caption,
    describe,
    describe_change,
    generate_raw_video,
    instruction_for,
    judge,
    parse_instruction,
    random_edit,
    random_scene,
    render,
    render_mask,
    render_pair,
    verify,
    write_raw_videos,
)
from training.world.edits import OBJECT_EDITS, intent_of

SIZE = 64
FRAMES = 9
PAIRS_PER_TYPE = 40


def _pairs(edit_type: str, count: int, seed: int):
    """``count`` (scene, edit, instruction) triples of one edit type; scenes that cannot take it are skipped."""
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < count:
        scene = random_scene(rng, num_frames=FRAMES)
        try:
            edit = random_edit(scene, rng, types=(edit_type,), num_frames=FRAMES)
        except ValueError:
            continue
        found.append((scene, edit, instruction_for(edit, scene, rng, num_frames=FRAMES)))
    return found


@pytest.fixture(scope="module")
def rendered_pairs():
    """Per edit type: (scene, edit, instruction, source, target, mask) for PAIRS_PER_TYPE random edits."""
    result = {}
    for seed, edit_type in enumerate(EDIT_TYPES):
        result[edit_type] = [
            (scene, edit, text, *render_pair(scene, edit, FRAMES, SIZE, SIZE))
            for scene, edit, text in _pairs(edit_type, PAIRS_PER_TYPE, seed=100 + seed)
        ]
    return result


# ------------------------------------------------------------------------------------------------ rendering


@pytest.mark.parametrize(("height", "width"), [(64, 64), (48, 80), (96, 64)])
def test_render_shapes_and_types(height, width):
    scene = random_scene(np.random.default_rng(0), num_sprites=3, aspect=width / height)
    frames = render(scene, 5, height, width, start_frame=3)
    assert frames.shape == (5, height, width, 3) and frames.dtype == np.uint8
    mask = render_mask(scene, 0, 5, height, width, start_frame=3)
    assert mask.shape == (5, height, width) and mask.dtype == bool
    assert mask.any(axis=(1, 2)).all(), "a placed sprite is visible in every frame"
    # start_frame continues the same clip.
    np.testing.assert_array_equal(render(scene, 8, height, width)[3:], frames)


def test_render_is_deterministic_from_seed():
    a = random_scene(np.random.default_rng(7))
    b = random_scene(np.random.default_rng(7))
    assert a == b
    np.testing.assert_array_equal(render(a, FRAMES, SIZE, SIZE), render(b, FRAMES, SIZE, SIZE))
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    assert random_edit(a, rng_a) == random_edit(b, rng_b)
    assert instruction_for(random_edit(a, rng_a), a, rng_a) == instruction_for(random_edit(b, rng_b), b, rng_b)


def test_camera_moves_the_background():
    background = Background("stripes", (58, 58, 58), (112, 112, 112), period=0.2, angle=90.0)
    still = render(Scene(background), 2, SIZE, SIZE)
    panned = render(Scene(background, camera=Camera(vy=0.05)), 2, SIZE, SIZE)
    np.testing.assert_array_equal(still[0], still[1])
    assert np.abs(panned[0].astype(int) - panned[1]).mean() > 5


def test_sprite_masks_cover_every_touched_pixel():
    sprite = Sprite("star", "red", 0.3, 0.0, 0.0, vx=0.01)
    scene = Scene(Background("plain", (58, 58, 58), (58, 58, 58)), (sprite,))
    frames = render(scene, 4, SIZE, SIZE)
    empty = render(replace(scene, sprites=()), 4, SIZE, SIZE)
    mask = render_mask(scene, 0, 4, SIZE, SIZE)
    changed = (frames != empty).any(axis=-1)
    assert changed.any() and not (changed & ~mask).any()


# ------------------------------------------------------------------------------------------------ raw videos


def test_raw_video_is_deterministic_and_cuts_where_events_say():
    frames, events = generate_raw_video(5, duration=20.0, fps=24.0, height=SIZE, width=SIZE)
    again, events_again = generate_raw_video(5, duration=20.0, fps=24.0, height=SIZE, width=SIZE)
    np.testing.assert_array_equal(frames, again)
    assert events == events_again
    assert frames.shape == (480, SIZE, SIZE, 3)
    cuts = [e.frame for e in events if e.kind == "cut"]
    assert len(cuts) >= 2, "20 s of 2-8 s shots has at least two cuts"
    bounds = [0, *cuts, len(frames)]
    assert all(24 <= b - a <= 24 * 9 for a, b in itertools.pairwise(bounds))
    step = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))  # step[i]: frame i -> i + 1
    at_cut = step[np.array(cuts) - 1]
    elsewhere = np.delete(step, np.array(cuts) - 1)
    # Measured over 10 videos: cuts 30-60 grey levels, within shots at most 13.
    assert at_cut.min() > 20 and elsewhere.max() < 16 and at_cut.min() > elsewhere.max()
    kinds = {e.kind for e in events}
    assert {"enter", "exit"} <= kinds


def test_write_raw_videos(tmp_path):
    from editor.video import read_video

    paths = write_raw_videos(tmp_path, 2, seed=3, duration=3.0, fps=12.0, size=(48, 64))
    assert [p.name for p in paths] == ["raw_00000.mp4", "raw_00001.mp4"]
    truth = json.loads(paths[0].with_suffix(".truth.json").read_text())
    assert truth["num_frames"] == 36 and (truth["height"], truth["width"]) == (48, 64)
    frames = read_video(paths[0]).frames
    assert frames.shape == (36, 48, 64, 3)
    expected, _ = generate_raw_video(truth["seed"], 3.0, 12.0, 48, 64)
    assert np.abs(frames.astype(int) - expected).mean() < 8, "the mp4 holds the generated frames (lossy)"


# ------------------------------------------------------------------------------------------------ describer


def test_describer_recovers_single_sprites():
    rng = np.random.default_rng(11)
    right = background_right = 0
    for _ in range(200):
        scene = random_scene(rng, num_sprites=1, style_prob=0.2)
        description = describe(render(scene, FRAMES, SIZE, SIZE))
        sprite = scene.sprites[0]
        right += [(o.colour, o.shape) for o in description.objects] == [(sprite.colour, sprite.shape)]
        background_right += description.background == scene.background.kind and description.style == scene.style
    # Measured 100% over 3000 scenes (colour + shape) and 100% (background kind + style).
    assert right / 200 >= 0.95
    assert background_right / 200 >= 0.95


def test_caption():
    background = Background("stripes", (58, 58, 58), (112, 112, 112), period=0.18, angle=30.0)
    sprites = (Sprite("square", "blue", 0.25, 0.25, 0.0), Sprite("circle", "red", 0.25, -0.25, 0.0))
    scene = Scene(background, sprites)
    assert caption(render(scene, 3, SIZE, SIZE)) == "a red circle and a blue square over a striped background"
    night = caption(render(replace(scene, style="night"), 3, SIZE, SIZE))
    assert night == "a red circle and a blue square over a striped background, at night"


def test_describe_change_sees_nothing_when_objects_only_move():
    rng = np.random.default_rng(4)
    quiet = 0
    for _ in range(30):
        scene = random_scene(rng, num_frames=40)
        clip = render(scene, 40, SIZE, SIZE)
        quiet += describe_change(clip[:FRAMES], clip[-FRAMES:]) is None
    assert quiet >= 27


# ------------------------------------------------------------------------------------------------ edits


@pytest.mark.parametrize("edit_type", EDIT_TYPES)
def test_edit_changes_only_inside_the_mask(rendered_pairs, edit_type):
    for _, _, _, source, target, mask in rendered_pairs[edit_type]:
        assert source.shape == target.shape == (*mask.shape, 3)
        changed = (source != target).any(axis=-1)
        assert changed.any()
        if edit_type in OBJECT_EDITS:
            assert not (changed & ~mask).any()
            assert mask.mean() < 0.5
        elif edit_type == "background":
            # The objects' interiors lie outside a new background's mask and are kept: a style that blurs bleeds
            # a little of the background into them (measured >= 50.6 dB over 200 pairs).
            assert 0.5 < mask.mean() < 1
            assert psnr(source, target, mask=~mask) >= 45
        else:
            assert mask.all()


@pytest.mark.parametrize("edit_type", EDIT_TYPES)
def test_describe_change_recovers_the_edit_type(rendered_pairs, edit_type):
    pairs = rendered_pairs[edit_type]
    right = 0
    for _, _, _, source, target, _ in pairs:
        change = describe_change(source, target)
        right += change is not None and change[0] == edit_type
    # Measured 100% per type over 200 pairs each; 0.85 leaves room for a few unlucky draws in 40.
    assert right / len(pairs) >= 0.85


@pytest.mark.parametrize("edit_type", EDIT_TYPES)
def test_describe_change_with_rng_varies_the_wording_not_the_edit(rendered_pairs, edit_type):
    wordings = set()
    for seed, (_, _, _, source, target, _) in enumerate(rendered_pairs[edit_type]):
        plain = describe_change(source, target)
        varied = describe_change(source, target, np.random.default_rng(seed))
        assert (plain is None) == (varied is None)
        if plain is None:
            continue
        assert varied[0] == plain[0]
        assert parse_instruction(varied[1]) == parse_instruction(plain[1]), (varied[1], plain[1])
        assert verify(source, target, varied[1]).followed == verify(source, target, plain[1]).followed
        wordings.add(varied[1].split()[0].lower())
    # Each edit type has at least three training templates that start differently.
    assert len(wordings) >= 3, wordings


@pytest.mark.parametrize("edit_type", EDIT_TYPES)
def test_verify_accepts_true_edits_and_rejects_the_source(rendered_pairs, edit_type):
    pairs = rendered_pairs[edit_type]
    accepted = rejected = 0
    for _, _, text, source, target, _ in pairs:
        verdict = verify(source, target, text)
        assert verdict.edit_type == edit_type, text
        accepted += verdict.followed
        rejected += not verify(source, source, text).followed
    # Measured 100% and 100% per type over 200 pairs each.
    assert accepted / len(pairs) >= 0.9
    assert rejected / len(pairs) >= 0.95


def test_canonical_edits_fix_what_the_instruction_leaves_open():
    from training.world import apply_edit
    from training.world.palette import BACKGROUND_TONES

    def canonical_target(scene, seed, edit_type):
        edit = random_edit(scene, np.random.default_rng(seed), types=(edit_type,), num_frames=FRAMES, canonical=True)
        return edit, render(apply_edit(scene, edit), FRAMES, SIZE, SIZE)

    # A replaced circle's turn never shows: however it was turned, the canonical replacement looks the same.
    circle = Sprite("circle", "red", 0.26, 0.0, 0.0, angle=10.0, spin=1.5)
    for shape_seed in range(4):
        turned = [
            Scene(Background("plain", (58, 58, 58), (58, 58, 58)), (replace(circle, angle=a),)) for a in (10, 200)
        ]
        (edit, first), (_, second) = (canonical_target(scene, shape_seed, "replace") for scene in turned)
        assert edit.upright and edit.shape != "circle"
        assert np.array_equal(first, second)
        words = f"replace the red circle with a {edit.colour} {edit.shape}"
        assert verify(render(turned[0], FRAMES, SIZE, SIZE), first, words).followed

    # A new background keeps the old tones and one layout per texture: draws that pick the same texture agree.
    for scene, _, _ in _pairs("background", 12, seed=3):
        targets = {}
        for seed in range(8):
            edit, target = canonical_target(scene, seed, "background")
            new, old = edit.background, scene.background
            assert new.kind != old.kind
            tones = (
                {old.colour_a, old.colour_b}
                if old.kind != "plain"
                else {tone for pair in BACKGROUND_TONES.values() if old.colour_a in pair for tone in pair}
            )
            assert {new.colour_a, new.colour_b} <= tones
            if new.kind in targets:
                assert np.array_equal(targets[new.kind], target)
            targets[new.kind] = target
            source = render(scene, FRAMES, SIZE, SIZE)
            assert verify(source, target, f"make the background {new.kind}").followed


def test_instructions_parse_back_to_their_edits():
    for seed, edit_type in enumerate(EDIT_TYPES):
        for scene, edit, text in _pairs(edit_type, 30, seed=200 + seed):
            intent, parsed = intent_of(edit, scene, FRAMES), parse_instruction(text)
            assert parsed is not None and parsed.type == intent.type, text
            sprite = scene.sprites[edit.target] if edit.target is not None else edit.sprite
            if sprite is not None:
                assert parsed.colour in (None, sprite.colour) and parsed.shape in (None, sprite.shape), text
                assert parsed.colour or parsed.shape, text
            assert parsed.new_colour in (None, intent.new_colour), text
            assert parsed.new_shape == intent.new_shape and parsed.background == intent.background, text
            assert parsed.style == intent.style, text
    assert parse_instruction("replace the blue ring with a purple triangle").new_shape == "triangle"
    assert parse_instruction("put a purple triangle where the blue ring is").shape == "ring"
    assert parse_instruction("make the red circle blue").new_colour == "blue"
    assert parse_instruction("hello there") is None


def test_judge_scores(rendered_pairs):
    for edit_type in EDIT_TYPES:
        _, _, text, source, target, _ = rendered_pairs[edit_type][0]
        assert judge(source, target, text) == {"prompt_following": 3, "edit_quality": 3, "background_consistency": 3}
        assert judge(source, source, text)["prompt_following"] == 0
    _, _, text, source, target, _ = rendered_pairs["recolour"][0]
    noisy = np.clip(target + np.random.default_rng(0).normal(0, 8, target.shape), 0, 255).astype(np.uint8)
    scores = judge(source, noisy, text)
    assert scores["edit_quality"] < 3 and scores["background_consistency"] < 3


# ------------------------------------------------------------------------------------------------ editing pairs


def test_edit_pairs_have_ground_truth_and_avoid_excluded_phrasings(tmp_path):
    from editor.video import read_video
    from training.curation.manifest import read_manifest, validate_pair, write_jsonl
    from training.world.pairs import write_edit_pairs

    first = write_edit_pairs(tmp_path / "a", 6, seed=5)
    records = [validate_pair(r) for r in read_manifest(first)]
    assert [r["edit_type"] for r in records] == list(EDIT_TYPES)
    for record in records:
        source, target = (read_video(record[k]["path"]).frames for k in ("source", "target"))
        mask = read_video(record["mask"]["path"]).frames[..., 0] > 127
        assert source.shape == (FRAMES, SIZE, SIZE, 3)
        assert np.array_equal(source[~mask], target[~mask])  # lossless: nothing changes outside the mask
        assert verify(source, target, record["instruction"]).followed, record["instruction"]

    # The same seed again with the first set's phrasings excluded: same scenes, new words.
    write_jsonl(tmp_path / "train.jsonl", records)
    second = list(read_manifest(write_edit_pairs(tmp_path / "b", 6, seed=5, exclude=[tmp_path / "train.jsonl"])))
    old = {r["instruction"].lower() for r in records}
    assert all(r["instruction"].lower() not in old for r in second)
    with pytest.raises(ValueError, match="types"):
        write_edit_pairs(tmp_path / "c", 1, seed=0, types=("zoom",))


def test_heldout_phrasings_never_appear_in_training_phrasings():
    from training.world.language import phrase

    rng = np.random.default_rng(0)
    scenes = []
    for edit_type in EDIT_TYPES:
        for scene, edit, _ in _pairs(edit_type, 5, seed=7):
            scenes.append((scene, edit))
    for scene, edit in scenes:
        intent = intent_of(edit, scene)
        train = {phrase(intent, rng, phrasing="train").rstrip(".").lower() for _ in range(200)}
        heldout = {phrase(intent, rng, phrasing="heldout").rstrip(".").lower() for _ in range(50)}
        assert heldout and not train & heldout, (intent, train & heldout)
        assert parse_instruction(next(iter(heldout))) is not None  # the verifier still reads them
    with pytest.raises(ValueError, match="phrasing='novel'"):
        phrase(intent, rng, phrasing="novel")


def moved_object(source: np.ndarray, target: np.ndarray, mask: np.ndarray, dx: int) -> np.ndarray | None:
    """`source` with the target's added object pasted `dx` pixels to the side; None if it would leave the frame."""
    frames, rows, cols = np.nonzero(mask)
    if not len(cols) or cols.max() + dx >= source.shape[2] or cols.min() + dx < 0:
        return None
    edited = source.copy()
    edited[frames, rows, cols + dx] = target[frames, rows, cols]
    return edited


def test_an_object_added_elsewhere_than_the_ground_truth_is_part_of_the_edit(rendered_pairs):
    from training.evaluation.scoring import psnr_outside_edit
    from training.metrics import psnr
    from training.world.verifier import added_region

    tested = 0
    for _, _, text, source, target, mask in rendered_pairs["add"]:
        if parse_instruction(text).location is not None:
            continue  # "in the top left" fixes the place; moving the object may break it
        for dx in (20, -20):
            edited = moved_object(source, target, mask, dx)
            if edited is not None and verify(source, edited, text).followed:
                break
        else:
            continue
        added = added_region(source, edited, text)
        assert added is not None and added.shape == mask.shape, text
        # Outside the ground truth's mask the moved object is a difference; set aside, nothing else changed.
        assert psnr(edited, target, ~mask) < 25 <= psnr_outside_edit(edited, target, mask, added), text
        tested += 1
    assert tested >= 5, tested
    # Only an add that happened has an added region.
    _, _, text, source, target, _ = rendered_pairs["add"][0]
    assert added_region(source, source, text) is None
    for _, _, text, source, target, _ in rendered_pairs["remove"][:5]:
        assert added_region(source, target, text) is None


def test_captioned_clips_say_what_their_frames_show_and_resume(tmp_path):
    from editor.video import read_video
    from training.curation.manifest import read_manifest
    from training.world.captions import write_captioned_clips

    manifest = write_captioned_clips(tmp_path, 6, seed=4, fps=4.5, style_prob=0.5)
    records = read_manifest(manifest)
    assert [r["id"] for r in records] == [f"clip{i:05d}" for i in range(6)]
    for record in records:
        assert record["source"] is None and record["edit_type"] == "text_to_video"
        frames = read_video(record["target"]["path"]).frames
        assert frames.shape == (9, 64, 64, 3)
        assert record["instruction"] == caption(frames) and " over " in record["instruction"]
    assert any("," in r["instruction"].split(" background")[-1] for r in records)  # some clips are styled

    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "videos").iterdir()}
    assert read_manifest(write_captioned_clips(tmp_path, 6, seed=4, fps=4.5, style_prob=0.5)) == records
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "videos").iterdir()} == written
