"""Files written whole or not at all, with the permissions an ordinary write would give them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from training.atomic import atomic_write, atomic_write_dir
from training.curation.manifest import write_jsonl


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_gives_the_usual_permissions(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("plain")
    atomic_write(tmp_path / "atomic.txt", lambda tmp: tmp.write_text("atomic"))
    write_jsonl(tmp_path / "records.jsonl", [{"id": 1}])
    assert (tmp_path / "atomic.txt").read_text() == "atomic"
    assert _mode(tmp_path / "atomic.txt") == _mode(tmp_path / "plain.txt")
    assert _mode(tmp_path / "records.jsonl") == _mode(tmp_path / "plain.txt")


def test_atomic_write_creates_the_folder_and_replaces_an_older_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "file.txt"
    atomic_write(path, lambda tmp: tmp.write_text("one"))
    atomic_write(path, lambda tmp: tmp.write_text("two"))
    assert path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["file.txt"]


def test_failed_atomic_write_keeps_the_previous_file_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    path.write_text("previous")

    def fail_half_way(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, fail_half_way)
    assert path.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_atomic_write_dir_replaces_the_folder_whole(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    atomic_write_dir(folder, lambda tmp: (tmp.mkdir(), (tmp / "old.txt").write_text("old")))
    atomic_write_dir(folder, lambda tmp: (tmp.mkdir(), (tmp / "new.txt").write_text("new")))
    assert [p.name for p in folder.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
