"""Shared exports: one tiny model exported once per session, copied by tests that damage it.

The engine directory holds the AOTI package (~60 s to compile on the 2-core CPU) and three of the
five ONNX graphs (~20 s each): block 0 denoise, standard refresh and text K/V cover both token
geometries, both output sets and the text pass. The all-graphs export runs in a ``slow`` test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from omniforcing_rt.export.exporter import export_engine
from omniforcing_rt.export.options import ExportOptions
from tests.helpers.tiny_model import tiny_model

from omniforcing_rt.models import write_model_dir

PAGE = 16
GRAPHS = ("denoise_block0", "refresh_block", "text_kv")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    root = Path(tmp_path_factory.mktemp("tiny_model"))
    write_model_dir(root, tiny_model(seed=3), {"latent_grid_hw": [2, 3], "text_tokens": 8})
    return root


@pytest.fixture(scope="session")
def engine_dir(tiny_dir, tmp_path_factory) -> Path:
    out = Path(tmp_path_factory.mktemp("engines")) / "tiny"
    export_engine(tiny_dir, out, ExportOptions(page_size_tokens=PAGE, graphs=GRAPHS, progress=False))
    return out


@pytest.fixture
def engine_copy(engine_dir, tmp_path) -> Path:
    """A private copy of the exported directory (tests may damage it)."""
    dst = tmp_path / "copy"
    shutil.copytree(engine_dir, dst)
    return dst
