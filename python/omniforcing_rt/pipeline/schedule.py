"""Noise-level schedules: the LTX-2 sigma grid, the student's step list, and the re-noise rule.

The student never integrates an ODE. At each sigma it predicts a clean estimate x0 and, if another
step follows, re-noises that estimate to the next sigma with fresh Gaussian noise (spec A.11). The
sigmas themselves are the points of a 40-step LTX2Scheduler grid nearest to the checkpoint's
``denoising_step_list`` (integers on a 0..1000 scale).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from omniforcing_rt.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_SHIFT",
    "DEFAULT_TERMINAL",
    "PAPER_STEP_LIST",
    "RELEASE_STEP_LIST",
    "ltx2_sigmas",
    "renoise",
    "student_sigmas",
]

DEFAULT_MAX_SHIFT = 2.05
DEFAULT_TERMINAL = 0.1
RELEASE_STEP_LIST: tuple[int, ...] = (1000, 909, 725, 421, 0)
PAPER_STEP_LIST: tuple[int, ...] = (1000, 757, 522, 0)


def ltx2_sigmas(steps: int, shift: float = DEFAULT_MAX_SHIFT, terminal: float = DEFAULT_TERMINAL) -> torch.Tensor:
    """The LTX2Scheduler grid without a latent (fixed shift), as float32 like the official code.

    Args:
        steps: number of denoising steps N; the grid has N + 1 points ending at 0.
        shift: the logit shift s; sigma' = e^s / (e^s + 1/sigma - 1).
        terminal: the last non-zero sigma after stretching.

    Returns:
        float32 tensor [N + 1], decreasing from ~1 to 0.
    """
    if steps < 1:
        raise ConfigError(problems=[f"steps must be >= 1, got {steps}"])
    if not 0.0 <= terminal < 1.0:
        raise ConfigError(problems=[f"terminal must be in [0, 1), got {terminal}"])
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    nonzero = sigmas != 0
    shifted = math.exp(shift) / (math.exp(shift) + (1.0 / sigmas[nonzero] - 1.0))
    one_minus = 1.0 - shifted
    scale = one_minus[-1] / (1.0 - terminal)
    sigmas[nonzero] = 1.0 - one_minus / scale
    return sigmas


def student_sigmas(step_list: Sequence[int], grid_steps: int = 40) -> torch.Tensor:
    """Map a ``denoising_step_list`` to sigmas: each t/1000 snaps to the nearest grid point.

    Args:
        step_list: strictly decreasing integers in [0, 1000]; a trailing 0 marks "clean" and
            is kept as sigma 0 (it is not a pass).
        grid_steps: the LTX2Scheduler grid resolution (40 in every shipped config).

    Returns:
        float32 tensor [len(step_list)], the sigma of each entry (0 stays 0).
    """
    problems = []
    if len(step_list) < 1:
        problems.append("denoising_step_list is empty")
    if any(not (0 <= int(t) <= 1000) for t in step_list):
        problems.append(f"denoising_step_list entries must lie in [0, 1000], got {list(step_list)}")
    if any(int(a) <= int(b) for a, b in zip(step_list, step_list[1:])):
        problems.append(f"denoising_step_list must be strictly decreasing, got {list(step_list)}")
    if problems:
        raise ConfigError("invalid denoising_step_list", problems)
    grid = ltx2_sigmas(grid_steps)
    out = []
    for t in step_list:
        if int(t) == 0:
            out.append(torch.tensor(0.0))
            continue
        idx = torch.argmin((grid - float(t) / 1000.0).abs())
        out.append(grid[idx])
    return torch.stack(out).to(torch.float32)


def renoise(x0: torch.Tensor, noise: torch.Tensor, sigma_next: float) -> torch.Tensor:
    """The student's step rule: (1 - s) * x0 + s * eps, computed in fp32, cast back to x0's dtype."""
    if x0.shape != noise.shape:
        raise ConfigError(problems=[f"noise shape {tuple(noise.shape)} != x0 shape {tuple(x0.shape)}"])
    out = (1.0 - sigma_next) * x0.float() + sigma_next * noise.float()
    return out.to(x0.dtype)
