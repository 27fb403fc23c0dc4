"""Shared fixtures: the reference fixtures and real clips beside the repository, and tiny pipelines."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"

# Everything the tests load is local; a hub lookup would be a bug.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# bitsandbytes warns at import about optional CPU kernels the tests never use.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    path = SHARED / "fixtures" / "icve_golden"
    if not path.is_dir():
        pytest.fail(f"reference fixtures not found at {path}: the golden ICVE test cannot run without them")
    return path


@pytest.fixture(scope="session")
def shared_videos() -> Path:
    path = SHARED / "videos"
    if not path.is_dir():
        pytest.fail(f"real clips not found at {path}")
    return path


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory) -> Path:
    """A tiny random pipeline (Llama + CLIP text encoders) written with save_pretrained."""
    from tiny_pipeline import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def icve_sources(tmp_path_factory, golden_dir) -> tuple[Path, Path]:
    """A tiny HunyuanVideo base (diffusers layout) and the golden ICVE transformer (original layout + config.json)."""
    import shutil

    from tiny_pipeline import save_tiny_hunyuan_base

    root = tmp_path_factory.mktemp("icve")
    base = save_tiny_hunyuan_base(root / "HunyuanVideo")
    transformer = root / "ICVE"
    transformer.mkdir()
    shutil.copy(golden_dir / "original_weights.safetensors", transformer / "icve.safetensors")
    shutil.copy(golden_dir / "original_config.json", transformer / "config.json")
    return base, transformer
