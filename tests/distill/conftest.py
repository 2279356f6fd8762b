"""Shared fixtures of the distillation tests: a tiny teacher and a few ODE pairs, built once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from omniforcing_rt.distill import run_stage

from ._helpers import tiny_config

# Tiny tensors: intra-op threads only add contention on the shared 2-core CI box.
torch.set_num_threads(1)


@dataclass(frozen=True)
class Assets:
    teacher: Path
    pairs: Path


@pytest.fixture(scope="session")
def assets(tmp_path_factory) -> Assets:
    root = tmp_path_factory.mktemp("distill_assets")
    res = run_stage(tiny_config("ode-pairs"), root, progress=False)
    return Assets(root / "teacher", res.ode_pairs)
