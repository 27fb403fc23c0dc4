"""The curation framework: stages, the ledger's balance, drops with reasons, resuming, workers, config loading."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field

import pytest

from training.config import load_config
from training.curation.manifest import clip, read_manifest, validate_pair
from training.curation.pipeline import Drop, GlobalStage, Stage, StageContext, record_rng, run_pipeline


def split(record, ctx):
    if record["n"] == 0:
        raise Drop("empty input")
    return [{**record, "id": f"{record['id']}#{k}", "k": k} for k in range(record["n"])]


def to_pair(record, ctx):
    if record["k"] == 2:
        raise RuntimeError("a broken backend reply")
    if record["k"] == 3:
        return []
    rng = record_rng(0, record, "to_pair")
    return [{
        "id": record["id"], "source": clip("a.mp4", 0, 1), "target": clip("a.mp4", 1, 2),
        "instruction": f"make the ball blue {rng.randrange(1000)}", "edit_type": "recolour", "mask": None,
        "scores": {}, "provenance": {"video": record["id"].split("#")[0]},
    }]  # fmt: skip


def drop_odd(records, ctx):
    kept = [r for i, r in enumerate(records) if i % 2 == 0]
    return kept, [(r, "odd") for i, r in enumerate(records) if i % 2]


STAGES = (Stage("split", "1", split), Stage("to_pair", "2", to_pair))
GLOBALS = (GlobalStage("drop_odd", "1", drop_odd),)


def units(count=6):
    return [{"id": f"video{i}", "n": i % 5} for i in range(count)]


def run(tmp_path, workers=1, items=None):
    return run_pipeline(
        items or units(), STAGES, GLOBALS, make_context=StageContext, work_dir=tmp_path / "work",
        manifest=tmp_path / "manifest.jsonl", workers=workers, progress=False,
    )  # fmt: skip


def test_ledger_counts_every_record_with_its_reason(tmp_path):
    result = run(tmp_path)
    counts = result.ledger.to_dict()
    assert result.ledger.balanced()
    assert counts["split"] == {"in": 6, "passed": 4, "out": 1 + 2 + 3 + 4, "dropped": {"empty input": 2}}
    assert counts["to_pair"]["dropped"] == {"error: RuntimeError": 2, "no output": 1}
    assert counts["to_pair"]["out"] == counts["to_pair"]["passed"] == 7
    assert counts["drop_odd"] == {"in": 7, "passed": 4, "out": 4, "dropped": {"odd": 3}}
    manifest = read_manifest(tmp_path / "manifest.jsonl")
    assert [r["id"] for r in manifest] == [r["id"] for r in result.records]
    assert manifest[0]["stages"] == {"split": "1", "to_pair": "2", "drop_odd": "1"}
    assert json.loads((tmp_path / "manifest.ledger.json").read_text()) == counts
    assert "empty input: 2" in result.ledger.table()


def test_resume_after_a_kill_gives_the_same_manifest(tmp_path):
    full = run(tmp_path / "full")
    # A killed run: only some unit results made it to disk.
    partial = tmp_path / "partial"
    run(partial, items=units()[:3])
    (partial / "manifest.jsonl").unlink()
    resumed = run(partial)
    assert resumed.units_resumed == 3
    assert (partial / "manifest.jsonl").read_text() == (tmp_path / "full" / "manifest.jsonl").read_text()
    assert resumed.ledger.to_dict() == full.ledger.to_dict()


def test_two_workers_give_the_same_manifest(tmp_path):
    run(tmp_path / "one")
    run(tmp_path / "two", workers=2)
    assert (tmp_path / "one" / "manifest.jsonl").read_text() == (tmp_path / "two" / "manifest.jsonl").read_text()


def test_duplicate_unit_ids_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        run(tmp_path, items=[{"id": "a", "n": 1}, {"id": "a", "n": 2}])


def test_manifest_schema_is_checked():
    good = {"id": "x", "source": clip("a.mp4", 0, 1), "target": clip("b.mp4", 0, 1), "instruction": "add a cat",
            "edit_type": "add", "mask": None, "scores": {}, "provenance": {}, "stages": {}}  # fmt: skip
    assert validate_pair(good)["id"] == "x"
    with pytest.raises(ValueError, match="lacks"):
        validate_pair({"id": "x"})
    with pytest.raises(ValueError, match="end > start"):
        validate_pair({**good, "target": clip("b.mp4", 1, 1)})
    with pytest.raises(ValueError, match="instruction"):
        validate_pair({**good, "instruction": "  "})


@dataclass(frozen=True)
class Inner:
    size: int = 3
    name: str = "x"


@dataclass(frozen=True)
class Outer:
    rate: float = 1.0
    inner: Inner = field(default_factory=Inner)
    tags: tuple[str, ...] = ()


def test_config_from_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rate: 2\ninner:\n  name: y\n")
    config = load_config(Outer, path, ["inner.size=5", "tags=[a, b]"])
    assert config == Outer(rate=2.0, inner=Inner(size=5, name="y"), tags=("a", "b"))
    assert isinstance(config.rate, float)
    with pytest.raises(ValueError, match=r"unknown config keys \['inner.colour'\]"):
        load_config(Outer, None, ["inner.colour=red"])
    with pytest.raises(ValueError, match="name=value"):
        load_config(Outer, None, ["rate"])
    with pytest.raises(FileNotFoundError):
        load_config(Outer, tmp_path / "missing.yaml")


def test_make_context_may_be_a_partial(tmp_path):
    result = run_pipeline(
        units(2), STAGES, (), make_context=functools.partial(StageContext), work_dir=tmp_path / "w",
        manifest=tmp_path / "m.jsonl", workers=2, progress=False,
    )  # fmt: skip
    assert result.ledger.balanced()
