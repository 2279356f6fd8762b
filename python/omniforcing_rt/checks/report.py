"""Rows of a fixture check and the table / ``worst:`` line printed by ``check-fixture``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["FIXTURE_TOLERANCE", "Row", "compare", "format_report", "worst"]

FIXTURE_TOLERANCE = 1e-4
"""fp32 max |diff| allowed on every covered key (the official code agrees with itself to ~1e-5)."""


@dataclass(frozen=True)
class Row:
    """One fixture key."""

    key: str
    """The key in io.safetensors."""
    diff: float | None
    """max |ours - reference| (None when not compared)."""
    status: str
    """'ok', 'FAIL', 'input' (fed to the model, not an output), or 'not covered'."""


def compare(key: str, ours: torch.Tensor, ref: torch.Tensor, tol: float = FIXTURE_TOLERANCE) -> Row:
    """Compare one output; shape or dtype-kind mismatches fail with an infinite diff."""
    if tuple(ours.shape) != tuple(ref.shape):
        return Row(key, float("inf"), "FAIL")
    if ref.dtype == torch.bool or not ref.dtype.is_floating_point:
        diff = 0.0 if torch.equal(ours.to(ref.dtype), ref) else float("inf")
    else:
        d = (ours.detach().double() - ref.double()).abs()
        diff = float(d.max()) if d.numel() else 0.0
        if not torch.isfinite(ours).all():
            diff = float("inf")
    return Row(key, diff, "ok" if diff <= tol else "FAIL")


def worst(rows: list[Row]) -> Row | None:
    """The compared row with the largest diff (a failing row first)."""
    compared = [r for r in rows if r.diff is not None]
    return max(compared, key=lambda r: (r.status == "FAIL", r.diff)) if compared else None


def format_report(rows: list[Row]) -> str:
    """Human-readable table: one line per key, then counts and the ``worst:`` line."""
    width = max((len(r.key) for r in rows), default=10)
    lines = [f"{'key':<{width}}  {'max|diff|':>11}  status"]
    for r in rows:
        d = "-" if r.diff is None else f"{r.diff:.3e}"
        lines.append(f"{r.key:<{width}}  {d:>11}  {r.status}")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines.append("summary: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    w = worst(rows)
    lines.append(f"worst: {w.key} {w.diff:.3e}" if w else "worst: none (no key compared)")
    return "\n".join(lines)
