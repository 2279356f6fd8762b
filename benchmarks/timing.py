"""Timing helpers for the benchmarks: warm-up excluded, median / p90 / std over repeats.

On CUDA each repeat is timed with a pair of CUDA events, optionally after overwriting a large
buffer so the L2 cache is cold (FlashInfer ``bench_gpu_time`` style). On CPU it uses
``time.perf_counter``. ``environment()`` records what a result needs to be comparable: device,
driver/CUDA, torch/triton versions, commit.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Timing:
    """Milliseconds per call over ``repeats`` timed calls (warm-up excluded)."""

    median_ms: float
    p90_ms: float
    std_ms: float
    repeats: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _summarise(samples_ms: list[float]) -> Timing:
    ordered = sorted(samples_ms)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    std = statistics.pstdev(ordered) if len(ordered) > 1 else 0.0
    return Timing(statistics.median(ordered), p90, std, len(ordered))


def bench(fn: Callable[[], Any], *, device: str, warmup: int = 2, repeats: int = 10, cold_l2: bool = False) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed ones."""
    for _ in range(warmup):
        fn()
    if device != "cuda":
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
        return _summarise(samples)
    flush = torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device="cuda") if cold_l2 else None
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    torch.cuda.synchronize()
    for start, end in zip(starts, ends):
        if flush is not None:
            flush.zero_()  # evict the previous call's working set from L2
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return _summarise([s.elapsed_time(e) for s, e in zip(starts, ends)])


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> dict[str, Any]:
    """Where and with what a benchmark ran."""
    env: dict[str, Any] = {
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "commit": _git_commit(),
        "cuda_available": torch.cuda.is_available(),
    }
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env |= {"gpu": props.name, "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
                "driver": _driver_version()}  # fmt: skip
    return env


def _driver_version() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)  # fmt: skip
        return out.stdout.strip().splitlines()[0] if out.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
