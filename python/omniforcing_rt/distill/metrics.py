"""Training metrics: one JSON object per step in ``metrics.jsonl`` and a plotted loss curve.

Every line holds at least ``step`` (1-based, completed optimisation steps) and ``loss``, plus the
stage's parts (per-modality losses, gradient norms, learning rates, wall time). On resume the file
is cut back to the resumed step, so it always describes one uninterrupted trajectory.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["MetricsLog", "plot_metrics", "read_metrics"]

log = logging.getLogger(__name__)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl (a torn last line from a crash is ignored)."""
    p = Path(path)
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s: skipping a malformed line", p)
    return out


class MetricsLog:
    """Appends step records (main process only)."""

    def __init__(self, path: Path, resume_step: int = 0) -> None:
        self.path = path
        keep = [r for r in read_metrics(path) if int(r.get("step", 0)) <= resume_step]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
        os.replace(tmp, path)

    def write(self, record: dict[str, Any]) -> None:
        if "step" not in record or "loss" not in record:
            raise ValueError("a metrics record needs 'step' and 'loss'")
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps(clean) + "\n")


def _smooth(values: list[float], window: int) -> list[float]:
    out, acc = [], []
    for v in values:
        acc.append(v)
        if len(acc) > window:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


def plot_metrics(records: list[dict[str, Any]], path: Path, title: str, keys: tuple[str, ...] = ("loss",)) -> bool:
    """Plot ``keys`` against step (raw and smoothed, log y when positive) to a PNG; False if no matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no loss plot written")
        return False
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        pts = [(r["step"], r[key]) for r in records if isinstance(r.get(key), int | float)]
        if not pts:
            continue
        steps, vals = zip(*pts)
        ax.plot(steps, vals, alpha=0.35, label=key)
        ax.plot(steps, _smooth(list(vals), max(1, len(vals) // 20)), label=f"{key} (smoothed)")
        if min(vals) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"{title}: {key}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return True
