"""Kernel tests: reference vs Triton (CPU interpreter, or GPU) vs CUDA (GPU only).

The Triton interpreter must be selected before any ``@triton.jit`` decorator runs, i.e. before
the kernel modules are imported (toolchain.md, "Triton on CPU"), so it is set here, at the top,
when no GPU is present. On a GPU machine the compiled kernels run instead.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
# Explicit, so Triton 3.9's "default will change in 3.10" warning stays quiet and numerics stable.
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

from collections import defaultdict  # noqa: E402

import pytest  # noqa: E402
from kernels_testlib import MAX_DIFFS  # noqa: E402
from omniforcing_rt.kernels.triton import block_causal_attention as triton_attn  # noqa: E402
from omniforcing_rt.kernels.triton import block_causal_attention_bwd as triton_attn_bwd  # noqa: E402


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def device() -> str:
    """Where the fast kernels run: the GPU if there is one, else the CPU (interpreter)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture
def gpu_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the interpreter with the tile sizes of the compiled GPU kernels.

    The interpreter normally uses large tiles for speed; the awkward-size tests use this fixture
    so that the tail masking and tile boundaries the GPU will see are the ones being checked.
    """
    monkeypatch.setattr(triton_attn, "tile_config", triton_attn.gpu_tile_config)
    monkeypatch.setattr(triton_attn_bwd, "bwd_tile_config", lambda d: (64, 64, 4, 2))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``slow`` kernel tests unless asked for (``-m slow`` or ``OFRT_RUN_SLOW=1``)."""
    if os.environ.get("OFRT_RUN_SLOW") == "1" or "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow on the CPU interpreter; run with -m slow or OFRT_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords and "tests/kernels" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """Print the largest difference to the reference seen per (op, impl, dtype)."""
    if not MAX_DIFFS:
        return
    terminalreporter.section("kernel max |fast - reference| (this run)")
    rows: dict[tuple[str, str, str], float] = defaultdict(float)
    for key, value in MAX_DIFFS.items():
        rows[key] = max(rows[key], value)
    for (op, impl, dtype), value in sorted(rows.items()):
        terminalreporter.write_line(f"  {op:<34} {impl:<9} {dtype:<15} {value:.3e}")
