"""Pytest fixtures of the media tests (reference fixture tensors, a random-weight alt checkpoint)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from .helpers import ALT_METADATA, FIXTURE_DIR, alt_modules, write_checkpoint


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    if not (FIXTURE_DIR / "io.safetensors").is_file():
        pytest.skip(f"media fixture not found at {FIXTURE_DIR}")
    return FIXTURE_DIR


@pytest.fixture(scope="session")
def fixture_io(fixture_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(fixture_dir / "io.safetensors"))


@pytest.fixture(scope="session")
def fixture_weights(fixture_dir: Path) -> Path:
    return fixture_dir / "weights.safetensors"


@pytest.fixture(scope="session")
def alt_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("alt") / "alt.safetensors"
    return write_checkpoint(path, ALT_METADATA, alt_modules())
