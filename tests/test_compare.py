"""Two evaluations read edit by edit: counts per edit type, paired gaps, and refusal of different benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.evaluation.compare import comparison_table, load_results, main

EDITS = [(f"bench{i:05d}-{kind}", kind, f"{kind} thing {i}") for kind in ("add", "remove") for i in range(6)]


def write_results(folder: Path, clean: set[str], strict: set[str] | None = None, steps: int = 10) -> Path:
    strict = clean if strict is None else strict
    samples = [
        {"id": edit_id, "edit_type": kind, "instruction": text, "clean_success": edit_id in clean,
         "strict_success": edit_id in strict}
        for edit_id, kind, text in EDITS
    ]  # fmt: skip
    model = {"precision": "fp32", "sampling": {"steps": steps, "guidance": 2.0, "seed": 0}}
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"model": model, "samples": samples}))
    return folder


def row(table: str, label: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_gaps_are_counted_per_edit_type_and_overall(tmp_path: Path) -> None:
    adds = [edit_id for edit_id, kind, _ in EDITS if kind == "add"]
    removes = [edit_id for edit_id, kind, _ in EDITS if kind == "remove"]
    # The first model passes every add the second does and three more; removals are the same edits on both.
    first = write_results(tmp_path / "a", clean={*adds[:4], *removes[:2]}, strict={*adds[:2]})
    second = write_results(tmp_path / "b", clean={*adds[:1], *removes[:2]}, strict={*adds[:2]}, steps=20)

    table = comparison_table([load_results(first)], [load_results(second)], ("new", "old"))

    # Add differences 0,1,1,1,0,0: sd 0.548, SE 0.224, times 6 edits; overall three 1s of 12: sd 0.452, SE 0.131.
    assert row(table, "add")[1:4] == ["4/6", "1/6", "+3.0 ± 1.3"]
    assert row(table, "remove")[1:4] == ["2/6", "2/6", "+0.0 ± 0.0"]
    assert row(table, "**all**")[1:] == ["6/12", "3/12", "+3.0 ± 1.6", "2/12", "2/12", "+0.0 ± 0.0"]
    assert "steps 20" in table and "steps 10" in table


def test_seeds_are_averaged_per_side(tmp_path: Path) -> None:
    adds = [edit_id for edit_id, kind, _ in EDITS if kind == "add"]
    firsts = [write_results(tmp_path / f"a{s}", clean=set(adds[: 2 + s])) for s in range(2)]
    seconds = [write_results(tmp_path / f"b{s}", clean=set(adds[:1])) for s in range(2)]

    table = comparison_table([load_results(p) for p in firsts], [load_results(p) for p in seconds], ("a", "b"))

    assert row(table, "add")[1:3] == ["2.5/6", "1/6"]
    assert row(table, "add")[3].startswith("+1.5 ±")
    with pytest.raises(ValueError, match="same number of results"):
        comparison_table([load_results(firsts[0])], [load_results(p) for p in seconds], ("a", "b"))


def test_different_benchmarks_are_refused_with_the_edit_named(tmp_path: Path) -> None:
    first = write_results(tmp_path / "a", clean=set())
    second = write_results(tmp_path / "b", clean=set())
    results = json.loads((second / "results.json").read_text())
    results["samples"][3]["instruction"] = "something else entirely"
    (second / "results.json").write_text(json.dumps(results))

    with pytest.raises(ValueError, match="bench00003-add"):
        comparison_table([load_results(first)], [load_results(second)], ("a", "b"))
    assert main(["--first", str(first), "--second", str(second)]) == 2


def test_the_command_writes_the_table_and_refuses_missing_results(tmp_path: Path, capsys) -> None:
    first = write_results(tmp_path / "a", clean={EDITS[0][0]})
    second = write_results(tmp_path / "b", clean=set())
    output = tmp_path / "out" / "comparison.md"

    assert main(["--first", str(first), "--second", str(second / "results.json"), "--output", str(output)]) == 0
    assert output.read_text() == capsys.readouterr().out
    assert row(output.read_text(), "add")[1:3] == ["1/6", "0/6"]
    assert main(["--first", str(tmp_path / "nowhere"), "--second", str(second)]) == 2
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "results.json").write_text(json.dumps({"samples": []}))
    with pytest.raises(ValueError, match="no per-edit samples"):
        load_results(tmp_path / "empty")
