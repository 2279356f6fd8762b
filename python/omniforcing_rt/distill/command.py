"""The ``omniforcing-rt distill`` sub-command (argument parsing and the run summary).

Kept free of heavy imports at module level: ``cli.py`` builds its parser from :func:`add_arguments`
without loading torch.

    omniforcing-rt distill {ode-pairs,ode,dmd,bidir-dmd} --config FILE --out DIR
    omniforcing-rt distill ode --preset tiny --steps N --out DIR     # no file needed
    torchrun --nproc_per_node 8 -m omniforcing_rt distill dmd --config dmd.toml --out runs/dmd
    omniforcing-rt distill ode --preset tiny --nproc 2 --out DIR     # local processes (gloo on CPU)
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run_command"]

STAGE_CHOICES = ("ode-pairs", "ode", "dmd", "bidir-dmd")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The distill sub-command's arguments."""
    p.add_argument("stage", choices=STAGE_CHOICES, help="which stage to run")
    p.add_argument("--config", default=None, help="JSON or TOML config file (keys of DistillConfig)")
    p.add_argument("--preset", default=None, choices=("tiny",), help="built-in configuration (tiny: no files needed)")
    p.add_argument("--out", required=True, help="output directory (checkpoints, metrics.jsonl, loss.png, export/)")
    p.add_argument("--steps", type=int, default=None, help="override train.steps")
    p.add_argument("--teacher", default=None, help="override the teacher checkpoint / model directory")
    p.add_argument("--ode-pairs", default=None, help="override the ODE pairs directory")
    p.add_argument("--nproc", type=int, default=1, help="start N local processes (FSDP2; gloo on CPU)")
    p.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints in OUT")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    top: dict[str, Any] = {"teacher": args.teacher, "ode_pairs": args.ode_pairs}
    if args.steps is not None:
        top["train"] = {"steps": args.steps}
    return top


def _worker(cfg_dict: dict[str, Any], out: str, resume: bool, progress: bool) -> None:
    from omniforcing_rt.distill.config import build_config
    from omniforcing_rt.distill.stages import run_stage

    run_stage(build_config(cfg_dict["stage"], cfg_dict), out, resume=resume, progress=progress)


def _mean(values: list[float]) -> float:
    vals = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def summary(stage: str, out: Path) -> str:
    """One paragraph describing a finished run (from its files)."""
    from omniforcing_rt.distill.metrics import read_metrics

    lines = [f"distill {stage}: output in {out}"]
    recs = read_metrics(out / "metrics.jsonl")
    if recs:
        n = max(1, min(10, len(recs) // 5))
        losses = [r["loss"] for r in recs]
        wall = sum(r.get("step_s", 0.0) for r in recs)
        lines.append(
            f"  steps {recs[0]['step']}..{recs[-1]['step']}: loss {losses[0]:.4g} -> {losses[-1]:.4g} "
            f"(mean of first {n}: {_mean(losses[:n]):.4g}, last {n}: {_mean(losses[-n:]):.4g}); "
            f"training time {wall:.1f} s"
        )
        lines.append(f"  metrics: {out / 'metrics.jsonl'}  curve: {out / 'loss.png'}")
    for d in ("ode_pairs", "export/generator", "export/generator_ema", "checkpoints"):
        if (out / d).exists():
            lines.append(f"  {d}: {out / d}")
    return "\n".join(lines) + "\n"


def run_command(args: argparse.Namespace) -> int:
    """Build the config (every problem reported at once), run the stage, print a summary."""
    from omniforcing_rt.distill.config import build_config, load_config
    from omniforcing_rt.errors import ConfigError

    top = _overrides(args)
    if args.config is not None:
        cfg = load_config(args.config, args.stage, args.preset, **top)
    else:
        if args.preset is None and args.teacher is None:
            raise ConfigError(problems=["give --config FILE, --preset tiny, or at least --teacher PATH"])
        cfg = build_config(args.stage, None, args.preset, **top)
    if args.nproc < 1:
        raise ConfigError(problems=[f"--nproc must be >= 1, got {args.nproc}"])
    resume, progress = not args.no_resume, not args.quiet
    if args.nproc > 1:
        from omniforcing_rt.distill.distributed import spawn

        spawn(_worker, args.nproc, (cfg.to_dict(), args.out, resume, progress))
    else:
        from omniforcing_rt.distill.stages import run_stage

        run_stage(cfg, args.out, resume=resume, progress=progress)
    sys.stdout.write(summary(args.stage, Path(args.out)))
    return 0
