"""Train the models of the synthetic world (issue #10), stage by stage.

Stage ``media`` (phase 2a): the video autoencoder, the audio autoencoder and the vocoder, each
in its own resumable run directory under ``--runs`` (``<runs>/<part>/checkpoint.pt``,
``metrics.jsonl``, ``loss.png``). Re-running the same command resumes where it stopped.

    python scripts/train_world.py media --part video --minutes 14
    python scripts/train_world.py media --part audio --minutes 10
    python scripts/train_world.py media --part vocoder --minutes 8
    python scripts/train_world.py media-export --out python/omniforcing_rt/assets/world/media
    python scripts/train_world.py media-eval --count 16 --json runs/world/media_eval.json

Stage ``teacher`` (phase 2b): the bidirectional teacher, trained by flow matching on latents of
train clips encoded by the exported world media (``--media``; ``--latents standin`` uses the fixed
test encoder instead). ``<runs>/teacher`` holds the latent cache, checkpoints, ``metrics.jsonl``,
``loss.png`` and the exported model directory ``<runs>/teacher/model`` (the distillation ``teacher``).

    python scripts/train_world.py teacher --minutes 15 --media python/omniforcing_rt/assets/world/media/media.safetensors

Training runs on one CPU thread (``--threads``) and is deterministic from ``--seed``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from omniforcing_rt.world_models.train_media import PARTS, MediaTrainer, default_train_config

RUNS = Path("runs/world")


def _train(args: argparse.Namespace) -> None:
    parts = PARTS if args.part == "all" else (args.part,)
    for part in parts:
        overrides = {"seed": args.seed}
        if args.steps:
            overrides["steps"] = args.steps
        trainer = MediaTrainer(default_train_config(part, **overrides))
        max_s = None if args.minutes is None else 60.0 * args.minutes
        summary = trainer.run(Path(args.runs) / part, max_seconds=max_s)
        print(json.dumps({"part": part, **summary}))


def _export(args: argparse.Namespace) -> None:
    from omniforcing_rt.world_models.export import export_media

    info = export_media(
        Path(args.runs),
        Path(args.out),
        storage=args.storage,
        video_storage=args.video_storage,
        stats_clips=args.stats_clips,
    )
    print(json.dumps(info, indent=1))


def _evaluate(args: argparse.Namespace) -> None:
    from omniforcing_rt.world_models.evaluate_media import evaluate_media

    result = evaluate_media(Path(args.model), count=args.count)
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    print(json.dumps(result["summary"], indent=1))


def _teacher(args: argparse.Namespace) -> None:
    from omniforcing_rt.world_models.teacher_config import TeacherConfig
    from omniforcing_rt.world_models.train_teacher import TeacherTrainer, prepare_latents

    overrides = {"seed": args.seed, "latent_source": args.latents, "media": args.media, "train_clips": args.clips,
                 "num_layers": args.layers, "batch_size": args.batch}  # fmt: skip
    if args.steps:
        overrides["steps"] = args.steps
    config = TeacherConfig(**overrides)
    run_dir = Path(args.runs) / "teacher"
    latents = prepare_latents(config, run_dir)
    max_s = None if args.minutes is None else 60.0 * args.minutes
    print(json.dumps(TeacherTrainer(config, latents).run(run_dir, max_seconds=max_s)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", default=str(RUNS), help="run directories (one per part)")
    sub = ap.add_subparsers(dest="stage", required=True)
    tr = sub.add_parser("media", help="train the media autoencoders and vocoder")
    tr.add_argument("--part", choices=[*PARTS, "all"], default="all")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--steps", type=int, default=0, help="planned steps (0: the part's default)")
    tr.add_argument("--minutes", type=float, default=None, help="stop (resumably) after this much wall time")
    ex = sub.add_parser("media-export", help="write the trained media as a model-style directory")
    ex.add_argument("--out", default="python/omniforcing_rt/assets/world/media")
    ex.add_argument("--storage", choices=["fp8", "fp16", "fp32"], default="fp16")
    ex.add_argument("--video-storage", choices=["fp8", "fp16", "fp32"], default=None, help="default: --storage")
    ex.add_argument("--stats-clips", type=int, default=32)
    ev = sub.add_parser("media-eval", help="round-trip held-out clips and score them")
    ev.add_argument("--model", default="python/omniforcing_rt/assets/world/media")
    ev.add_argument("--count", type=int, default=16)
    ev.add_argument("--json", default=None)
    te = sub.add_parser("teacher", help="train the bidirectional teacher by flow matching on world latents")
    te.add_argument("--latents", choices=["world", "standin"], default="world")
    te.add_argument("--media", default="python/omniforcing_rt/assets/world/media/media.safetensors")
    te.add_argument("--clips", type=int, default=256, help="train clips whose latents are cached")
    te.add_argument("--layers", type=int, default=2)
    te.add_argument("--batch", type=int, default=8)
    te.add_argument("--seed", type=int, default=0)
    te.add_argument("--steps", type=int, default=0, help="planned steps (0: the config default)")
    te.add_argument("--minutes", type=float, default=None, help="stop (resumably) after this much wall time")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO)
    {"media": _train, "media-export": _export, "media-eval": _evaluate, "teacher": _teacher}[args.stage](args)


if __name__ == "__main__":
    main()
