"""``omniforcing-rt world ...`` and ``omniforcing-rt evaluate``: the world's command line.

Commands:
  world sample   render one clip (by seed, or by split + index) to an .mp4 or .npz plus its
                 ground-truth JSON, and print its caption
  world dataset  render clips of a split into a directory (mp4 for viewing, npz for training)
  world score    score a clip file (.mp4 / .npz) against a caption: sync error, prompt accuracy
  evaluate       score models on held-out scenes (student: a streaming model, default the
                 embedded ``default``; teacher: not trained yet; plus the ground-truth renderer)
                 and print a table; ``--json FILE`` writes {"teacher": ..., "student": ...,
                 "ground_truth": ...}

Registered by :func:`add_parsers`; ``cli.py`` only calls it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from omniforcing_rt.errors import InputError
from omniforcing_rt.world.scene import WorldConfig

__all__ = ["add_parsers", "read_clip"]

TEACHER_UNAVAILABLE = ("no trained teacher yet: the world teacher (issue #10, phase 2) will be a bidirectional "
                       "many-step model trained on the train split")  # fmt: skip


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``world`` (with its sub-commands) and ``evaluate`` to the CLI's sub-parsers."""
    w = sub.add_parser("world", help="the synthetic audio-visual world: sample / dataset / score")
    ws = w.add_subparsers(dest="world_cmd", required=True)
    s = ws.add_parser("sample", help="render one clip (.mp4 or .npz) + ground-truth JSON")
    s.add_argument("--seed", type=int, default=None, help="scene seed (default: the split's clip --index)")
    s.add_argument("--split", default="heldout", choices=("train", "heldout", "reference"))
    s.add_argument("--index", type=int, default=0, help="clip index within --split (when no --seed)")
    s.add_argument("--out", default="clip.mp4", help="CLIP.mp4 or CLIP.npz (ground truth: CLIP.json)")
    _add_world_arguments(s)
    s.set_defaults(fn=_cmd_sample)
    d = ws.add_parser("dataset", help="render clips of a split into a directory")
    d.add_argument("--count", type=int, required=True)
    d.add_argument("--out", required=True, help="output directory")
    d.add_argument("--split", default="train", choices=("train", "heldout", "reference"))
    d.add_argument("--start", type=int, default=0, help="first clip index")
    d.add_argument("--format", default="npz", choices=("npz", "mp4"), help="npz: lossless (training); mp4: viewing")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_world_arguments(d)
    d.set_defaults(fn=_cmd_dataset)
    c = ws.add_parser("score", help="score a clip file against a caption")
    c.add_argument("clip", help=".mp4 or .npz")
    c.add_argument("--caption", default=None, help="caption (default: from CLIP.json next to the clip)")
    _add_world_arguments(c)
    c.set_defaults(fn=_cmd_score)
    _add_evaluate_parser(sub)


def _add_world_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=WorldConfig.frames, help="frames per clip (25 + 24 k)")


def _add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("evaluate", help="score teacher / student on held-out scenes of the world")
    e.add_argument("--student", default="default", help="student model name or directory (streaming)")
    e.add_argument("--count", type=int, default=8, help="held-out scenes (and reference clips)")
    e.add_argument("--json", default=None, metavar="FILE", help="write the report as JSON")
    e.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_world_arguments(e)
    e.set_defaults(fn=_cmd_evaluate)


def _world(args: argparse.Namespace) -> WorldConfig:
    return WorldConfig(frames=args.frames)


def _cmd_sample(args: argparse.Namespace) -> int:
    from omniforcing_rt.world.dataset import clip_seed, make_clip, write_clip

    out = Path(args.out)
    if out.suffix.lower() not in (".mp4", ".npz"):
        raise InputError(f"--out must end in .mp4 or .npz, got {out}")
    seed = args.seed if args.seed is not None else clip_seed(args.split, args.index)
    clip = make_clip(_world(args), seed)
    paths = write_clip(clip, out.with_suffix(""), out.suffix.lower().lstrip("."))
    sys.stdout.write(f"seed {seed}: {clip.caption}\n{len(clip.scene.events)} impacts; wrote "
                     + ", ".join(map(str, paths)) + "\n")  # fmt: skip
    return 0


def _cmd_dataset(args: argparse.Namespace) -> int:
    from omniforcing_rt.world.dataset import write_dataset

    m = write_dataset(Path(args.out), _world(args), args.split, args.count, start=args.start, fmt=args.format,
                      progress=not args.quiet)  # fmt: skip
    sys.stdout.write(f"wrote {m['count']} {args.split} clips (seeds {m['first_seed']}..) to {args.out}\n")
    return 0


def read_clip(path: Path) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(frames uint8 [F, H, W, 3], audio float32 [2, N], fps, sample_rate) of an .npz or .mp4 clip."""
    if path.suffix.lower() == ".npz":
        with np.load(path) as z:
            return z["frames"], z["audio"], 24, 24_000
    import av

    with av.open(str(path)) as box:
        vs = box.streams.video[0]
        fps = int(round(float(vs.average_rate)))
        frames = np.stack([f.to_ndarray(format="rgb24") for f in box.decode(vs)])
    with av.open(str(path)) as box:
        rate = int(box.streams.audio[0].rate)
        chunks = [f.to_ndarray() for f in box.decode(box.streams.audio[0])]
    audio = np.concatenate(chunks, axis=1).astype(np.float32)
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    return frames, audio, fps, rate


def _cmd_score(args: argparse.Namespace) -> int:
    from omniforcing_rt.world.caption import parse_caption
    from omniforcing_rt.world.score import score_clip

    path = Path(args.clip)
    text = args.caption
    if text is None:
        meta = path.with_suffix(".json")
        if not meta.exists():
            raise InputError(f"no --caption and no {meta}")
        text = json.loads(meta.read_text())["caption"]
    cfg = _world(args)
    frames, audio, fps, rate = read_clip(path)
    score = score_clip(frames, audio, parse_caption(text, cfg), cfg, fps=fps, sample_rate=rate)
    report = {"clip": str(path), "caption": text, "sync_error_ms": score.sync_error_ms,
              "onset_recall": score.onset_recall, "prompt_accuracy": score.prompt_accuracy,
              "attributes": score.attributes, "visual_impacts": len(score.visual_impacts),
              "onsets": len(score.onsets)}  # fmt: skip
    sys.stdout.write(json.dumps(_json_safe(report), indent=1) + "\n")
    return 0


def _json_safe(x: Any) -> Any:
    """NaN / inf -> None, recursively (strict JSON)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def format_table(report: dict[str, dict[str, Any]]) -> str:
    """Rows (models) x metrics, plus the reason of every unavailable row."""
    from omniforcing_rt.world.evaluate import METRIC_KEYS

    lines = ["model         " + " ".join(f"{k:>16}" for k in METRIC_KEYS)]
    for name, row in report.items():
        lines.append(f"{name:<13} " + " ".join(f"{_fmt(row.get(k)):>16}" for k in METRIC_KEYS))
    lines += [f"{name}: {row['reason']}" for name, row in report.items() if row.get("status") != "ok"]
    return "\n".join(lines)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from omniforcing_rt.world.evaluate import (
        evaluate_generator,
        ground_truth_generator,
        reference_features,
        unavailable_row,
    )
    from omniforcing_rt.world.model_clip import streaming_clip_generator

    cfg = _world(args)
    reference = reference_features(cfg, args.count)
    student = streaming_clip_generator(args.student, cfg, threads=args.threads)
    report = {
        "teacher": unavailable_row(TEACHER_UNAVAILABLE),
        "student": evaluate_generator(student, cfg, args.count, reference=reference, progress=not args.quiet,
                                      desc="student"),
        "ground_truth": evaluate_generator(ground_truth_generator(cfg), cfg, args.count, reference=reference,
                                           progress=not args.quiet, desc="ground truth"),
    }  # fmt: skip
    report["student"]["model"] = args.student
    sys.stdout.write(format_table(report) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(_json_safe(report), indent=1) + "\n")
    return 0
