"""``omniforcing-rt`` command line (also ``python -m omniforcing_rt``).

Commands:
  generate       stream a clip from the model (default: the embedded ``default``) and write the
                 generated latents plus a per-block JSON report
  check-fixture  compare our implementation against a reference fixture directory
  info           describe a model (architecture, geometry, parameter count)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from omniforcing_rt.errors import OfrtError

__all__ = ["main"]

log = logging.getLogger("omniforcing_rt")


def _cmd_check_fixture(args: argparse.Namespace) -> int:
    from omniforcing_rt.checks.report import FIXTURE_TOLERANCE, format_report

    root = Path(args.dir)
    if not root.is_dir():
        raise OfrtError(f"{root} is not a directory")
    rows = _fixture_rows(root)
    out = format_report(rows)
    sys.stdout.write(out + "\n")
    failed = [r for r in rows if r.status == "FAIL"]
    if failed:
        sys.stderr.write(f"{len(failed)} keys exceed {FIXTURE_TOLERANCE:g}\n")
        return 1
    if not any(r.diff is not None for r in rows):
        sys.stderr.write("no key of this fixture could be compared\n")
        return 1
    return 0


def _fixture_rows(root: Path) -> list:
    from omniforcing_rt.checks.transformer_fixture import check_transformer_fixture, is_transformer_fixture

    if is_transformer_fixture(root):
        return check_transformer_fixture(root)
    from omniforcing_rt.checks.media_fixture import check_media_fixture_rows, is_media_fixture

    if is_media_fixture(root):
        return check_media_fixture_rows(root)
    raise OfrtError(f"{root} is not a fixture directory (need config.json, weights.safetensors, io.safetensors)")


def _cmd_generate(args: argparse.Namespace) -> int:
    import dataclasses

    import torch
    from safetensors.torch import save_file
    from tqdm import tqdm

    from omniforcing_rt.models import load_model
    from omniforcing_rt.pipeline.prompt import hashed_prompt_features
    from omniforcing_rt.pipeline.stream import StreamingGenerator

    torch.set_num_threads(max(1, torch.get_num_threads()))
    loaded = load_model(args.model)
    cfg = loaded.stream
    if args.window_seconds is not None:
        cfg = dataclasses.replace(cfg, video_window_s=args.window_seconds, audio_window_s=args.window_seconds)
    layout = cfg.layout(1).for_seconds(cfg.layout_kind, args.seconds, cfg.latent_grid_hw[0] * cfg.latent_grid_hw[1],
                                       block_frames=cfg.block_frames, first_block_frames=cfg.first_block_frames)
    log.warning("model %r has no text encoder yet: the prompt is hashed to seeded caption features", loaded.name)
    feats = hashed_prompt_features(args.prompt, loaded.text_tokens, loaded.model.config.caption_channels)
    text = loaded.model.encode_text(feats.video, feats.audio, feats.mask)
    gen = StreamingGenerator(loaded.model, cfg)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    videos, audios, records = [], [], []
    t0 = time.perf_counter()
    bar = tqdm(total=layout.num_blocks, desc="blocks", unit="block", disable=args.quiet)
    for res in gen.stream(text, seed=args.seed, num_blocks=layout.num_blocks):
        wall = time.perf_counter() - t0
        videos.append(res.video_latents)
        audios.append(res.audio_latents)
        records.append(_block_record(res, wall))
        bar.update(1)
    bar.close()
    total = time.perf_counter() - t0
    save_file({"video": torch.cat(videos).contiguous(), "audio": torch.cat(audios).contiguous()}, str(out / "latents.safetensors"))
    report = {
        "model": loaded.name, "prompt": args.prompt, "seed": args.seed, "seconds": layout.duration_s,
        "num_blocks": layout.num_blocks, "window_seconds": args.window_seconds, "wall_s": total,
        "ttfc_s": records[0]["ready_s"], "rtf": total / layout.duration_s, "blocks": records,
        "latents": str(out / "latents.safetensors"),
    }  # fmt: skip
    report_path = Path(args.report) if args.report else out / "report.json"
    report_path.write_text(json.dumps(report, indent=1) + "\n")
    sys.stdout.write(
        f"generated {layout.duration_s:.2f} s ({layout.num_blocks} blocks) in {total:.2f} s "
        f"(first block {records[0]['ready_s']:.2f} s, real-time factor {total / layout.duration_s:.2f}); "
        f"latents: {out / 'latents.safetensors'}, report: {report_path}\n"
    )
    return 0


def _block_record(res: object, wall: float) -> dict:
    return {
        "block": res.index,  # type: ignore[attr-defined]
        "video_pts_s": res.video_pts_s,  # type: ignore[attr-defined]
        "audio_pts_s": res.audio_pts_s,  # type: ignore[attr-defined]
        "video_frames": res.spec.pixel_frames,  # type: ignore[attr-defined]
        "audio_samples": res.spec.audio_samples,  # type: ignore[attr-defined]
        "kv_cache_bytes": res.kv_cache_bytes,  # type: ignore[attr-defined]
        "passes": [{"kind": t.kind, "sigma": t.sigma, "seconds": t.seconds} for t in res.timings],  # type: ignore[attr-defined]
        "ready_s": wall,
    }


def _cmd_info(args: argparse.Namespace) -> int:
    from omniforcing_rt.models import load_model

    loaded = load_model(args.model)
    cfg = loaded.model.config
    n = sum(p.numel() for p in loaded.model.parameters())
    sys.stdout.write(json.dumps({"model": loaded.name, "parameters": n, "config": cfg.to_metadata(), "info": loaded.info}, indent=1) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="omniforcing-rt", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="stream a clip and write latents + a per-block report")
    g.add_argument("prompt", nargs="?", default="a red ball bounces on a wooden floor", help="text prompt")
    g.add_argument("--model", default="default", help="model name or directory (default: the embedded 'default')")
    g.add_argument("--seconds", type=float, default=5.0, help="duration; must be a valid block duration (e.g. 5 -> 5.04 s)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--window-seconds", type=float, default=None, help="rolling KV window per modality (default: keep all)")
    g.add_argument("--out", default="out", help="output directory")
    g.add_argument("--report", default=None, help="JSON report path (default: OUT/report.json)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(fn=_cmd_generate)
    c = sub.add_parser("check-fixture", help="compare against a reference fixture; exit 1 beyond tolerance")
    c.add_argument("dir", help="fixture directory")
    c.set_defaults(fn=_cmd_check_fixture)
    i = sub.add_parser("info", help="describe a model")
    i.add_argument("--model", default="default")
    i.set_defaults(fn=_cmd_info)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return int(args.fn(args))
    except OfrtError as e:
        sys.stderr.write(f"error: {type(e).__name__}: {e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
