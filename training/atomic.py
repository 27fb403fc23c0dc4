"""Files and folders that appear whole or not at all: a killed run never leaves half of one for a rerun to trust."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file beside `path`, renamed over it when complete: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name rather than mkstemp's file, so that the file `write` makes gets the usual permissions, not 0600.
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_dir(folder: Path, write: Callable[[Path], object]) -> Path:
    """Fill a hidden sibling of `folder` with `write`, then put it in place of `folder` (replacing an older one).

    A leftover sibling from a killed run is discarded first, so the folder's presence means it is complete.
    """
    folder = Path(folder)
    tmp = folder.parent / f".{folder.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    write(tmp)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder
