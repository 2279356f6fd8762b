"""``omniforcing-rt`` command line (also ``python -m omniforcing_rt``).

Commands:
  generate       stream a clip from the model (default: the embedded ``default``): an .mp4
                 (H.264 + AAC, decoded block by block while generating; optional WAV, fMP4
                 fragments, latents, report) or, for a directory, the latents + a JSON report
  check-fixture  compare our implementation against a reference fixture directory
  info           describe a model (architecture, geometry, parameter count)
  distill        train the student: ode-pairs, ode, dmd, bidir-dmd (see omniforcing_rt.distill)
  bench          stream with the C++ engine (and the eager reference loop with --compare reference):
                 TTFC, steady FPS, per-block p50/p99, real-time factor, memory, speedup
  world          the synthetic audio-visual world: sample, dataset, score (omniforcing_rt.world)
  evaluate       score the student (and teacher) on held-out world scenes: sync, prompt, fidelity, speed
  export         write an engine directory: AOTInductor package, per-pass ONNX graphs, TensorRT
                 engines where TensorRT exists, manifest with hashes (omniforcing_rt.export)
  verify-export  run an engine directory against PyTorch, print max |diff| per output
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from omniforcing_rt.errors import ConfigError, InputError, OfrtError

__all__ = ["main"]

log = logging.getLogger("omniforcing_rt")


def _cmd_check_fixture(args: argparse.Namespace) -> int:
    from omniforcing_rt.checks.report import FIXTURE_TOLERANCE, format_report

    root = Path(args.dir)
    if not root.is_dir():
        raise OfrtError(f"{root} is not a directory")
    rows = _fixture_rows(root, args.attention_backend)
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


def _fixture_rows(root: Path, attention_backend: str = "sdpa") -> list:
    from omniforcing_rt.checks.transformer_fixture import check_transformer_fixture, is_transformer_fixture

    if is_transformer_fixture(root):
        return check_transformer_fixture(root, attention_backend)
    from omniforcing_rt.checks.media_fixture import check_media_fixture_rows, is_media_fixture

    if is_media_fixture(root):
        return check_media_fixture_rows(root)
    raise OfrtError(f"{root} is not a fixture directory (need config.json, weights.safetensors, io.safetensors)")


def _cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from omniforcing_rt.models import load_model
    from omniforcing_rt.pipeline.stream import StreamingGenerator

    torch.set_num_threads(max(1, torch.get_num_threads()))
    mp4 = str(args.out).lower().endswith(".mp4")
    if not mp4 and (args.wav or args.fragments):
        raise InputError("--wav and --fragments need an .mp4 --out (they are written from the decoded media)")
    loaded = load_model(args.model, media=mp4, text_encoder=True)
    if mp4 and loaded.media is None:
        raise ConfigError(f"model {loaded.name!r} has no media decoders (vae / audio_vae / vocoder)",
                          ["write latents instead: --out DIR"])  # fmt: skip
    cfg = loaded.stream
    if args.window_seconds is not None:
        cfg = dataclasses.replace(cfg, video_window_s=args.window_seconds, audio_window_s=args.window_seconds)
    layout = cfg.layout(1).for_seconds(
        cfg.layout_kind,
        args.seconds,
        cfg.latent_grid_hw[0] * cfg.latent_grid_hw[1],
        block_frames=cfg.block_frames,
        first_block_frames=cfg.first_block_frames,
    )
    if loaded.text_encoder is None:
        log.warning("model %r has no text encoder: the prompt is hashed to seeded caption features", loaded.name)
    feats = loaded.prompt_features(args.prompt)
    gen = (
        _EngineGenerator(loaded, args.window_seconds, args.seconds)
        if args.engine
        else StreamingGenerator(loaded.model, cfg)
    )
    with torch.no_grad():
        text = loaded.model.encode_text(feats.video, feats.audio, feats.mask)
    run = _Run(args, loaded, gen, layout, text)
    return _generate_media(run) if mp4 else _generate_latents(run)


class _EngineGenerator:
    """``generate --engine``: the compiled C++ engine behind the generator's ``stream`` call."""

    def __init__(self, loaded: Any, window_s: float | None, seconds: float) -> None:
        from omniforcing_rt.engine import Engine, EngineConfig

        cfg = EngineConfig(video_window_s=window_s, audio_window_s=window_s, max_stream_s=max(seconds, 1.0),
                           max_streams=1, kv_budget_bytes=None)  # fmt: skip
        log.info("compiling or loading the engine package (first use of a model compiles, ~1 min)")
        self.engine = Engine.from_pretrained(loaded, cfg)

    def stream(self, text: Any, seed: int, num_blocks: int) -> Any:
        seconds = self.engine.layout_for_blocks(num_blocks).duration_s
        with self.engine.stream(text, seed=seed, seconds=seconds) as stream:
            yield from stream


@dataclasses.dataclass
class _Run:
    """One ``generate`` invocation: arguments, model, generator, layout, text K/V."""

    args: argparse.Namespace
    loaded: Any
    gen: Any
    layout: Any
    text: Any
    t0: float = dataclasses.field(default_factory=time.perf_counter)

    def stream(self) -> Any:
        return self.gen.stream(self.text, seed=self.args.seed, num_blocks=self.layout.num_blocks)

    def report_base(self, records: list[dict], wall: float) -> dict:
        a, lay = self.args, self.layout
        return {
            "model": self.loaded.name, "prompt": a.prompt, "seed": a.seed, "seconds": lay.duration_s,
            "num_blocks": lay.num_blocks, "window_seconds": a.window_seconds, "wall_s": wall,
            "ttfc_s": records[0]["ready_s"], "rtf": wall / lay.duration_s,
            "text_encoder": "gemma" if self.loaded.text_encoder is not None else "hashed stand-in",
            "blocks": records,
        }  # fmt: skip


def _generate_latents(run: _Run) -> int:
    """Directory output: ``latents.safetensors`` + ``report.json`` (no media decode)."""
    import torch
    from safetensors.torch import save_file
    from tqdm import tqdm

    args, layout = run.args, run.layout
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    videos, audios, records = [], [], []
    bar = tqdm(total=layout.num_blocks, desc="blocks", unit="block", disable=args.quiet)
    for res in run.stream():
        records.append(_block_record(res, time.perf_counter() - run.t0))
        videos.append(res.video_latents)
        audios.append(res.audio_latents)
        bar.update(1)
    bar.close()
    total = time.perf_counter() - run.t0
    lat_path = Path(args.latents) if args.latents and args.latents != "auto" else out / "latents.safetensors"
    save_file({"video": torch.cat(videos).contiguous(), "audio": torch.cat(audios).contiguous()}, str(lat_path))
    report = {**run.report_base(records, total), "latents": str(lat_path)}
    report_path = Path(args.report) if args.report and args.report != "auto" else out / "report.json"
    report_path.write_text(json.dumps(report, indent=1) + "\n")
    sys.stdout.write(
        f"generated {layout.duration_s:.2f} s ({layout.num_blocks} blocks) in {total:.2f} s "
        f"(first block {records[0]['ready_s']:.2f} s, real-time factor {total / layout.duration_s:.2f}); "
        f"latents: {lat_path}, report: {report_path}\n"
    )
    return 0


def _generate_media(run: _Run) -> int:
    """MP4 output: generation on this thread, decode + muxing on the decode worker, block by block."""
    import torch
    from safetensors.torch import save_file
    from tqdm import tqdm

    from omniforcing_rt.media.av_output import AvWriter
    from omniforcing_rt.media.decode_worker import BlockDecoder, DecodeWorker

    args, layout, media = run.args, run.layout, run.loaded.media
    out = Path(args.out)
    h, w = media.frame_size(run.loaded.stream.latent_grid_hw)
    writer = AvWriter(w, h, fps=media.fps, sample_rate=media.sample_rate, mp4=out, wav=args.wav,
                      fragments=args.fragments)  # fmt: skip
    decoder = BlockDecoder(media, run.loaded.video_policy(), origin=run.t0)
    bar = tqdm(total=layout.num_blocks, desc="blocks decoded", unit="block", disable=args.quiet)

    def sink(block: Any) -> None:
        writer.write(block)
        bar.update(1)

    records, videos, audios = [], [], []
    with writer, DecodeWorker(decoder, sink) as worker:
        for res in run.stream():
            records.append(_block_record(res, time.perf_counter() - run.t0))
            if args.latents:
                videos.append(res.video_latents)
                audios.append(res.audio_latents)
            worker.submit(res)
            bar.set_postfix(generated=len(records))
    bar.close()
    total = time.perf_counter() - run.t0
    report = {**run.report_base(records, total), **_media_report(records, decoder, worker)}
    report["outputs"] = writer.summary()
    if args.latents:
        lat_path = Path(args.latents) if args.latents != "auto" else out.with_suffix(".latents.safetensors")
        save_file({"video": torch.cat(videos).contiguous(), "audio": torch.cat(audios).contiguous()}, str(lat_path))
        report["latents"] = str(lat_path)
    if args.report:
        report_path = Path(args.report) if args.report != "auto" else out.with_suffix(".report.json")
        report_path.write_text(json.dumps(report, indent=1) + "\n")
    sys.stdout.write(
        f"generated {layout.duration_s:.2f} s ({layout.num_blocks} blocks) in {total:.2f} s "
        f"(first media block {report['ttfc_media_s']:.2f} s, real-time factor {total / layout.duration_s:.2f}; "
        f"generate {report['generate_s']:.2f} s and decode {report['decode_s']:.2f} s ran concurrently for "
        f"{report['overlap_s']:.2f} s); video: {out}\n"
    )
    return 0


def _overlap(records: list[dict], steps: list[Any]) -> float:
    """Seconds during which the generator (block k: from block k-1 ready to block k ready) and the decoder both ran."""
    total, start = 0.0, 0.0
    for rec in records:
        end = rec["ready_s"]
        total += sum(max(0.0, min(end, t.finished_s) - max(start, t.started_s)) for t in steps)
        start = end
    return total


def _media_report(records: list[dict], decoder: Any, worker: Any) -> dict:
    """Per-block decode timings merged into ``records``; totals that show the overlap."""
    steps = {t.block: t for t in decoder.timings}
    for rec, emitted in zip(records, worker.emitted):
        step = steps.get(rec["block"])
        rec["generate_s"] = sum(p["seconds"] for p in rec["passes"])
        rec["decode"] = step.as_dict() if step is not None else None
        rec["video_frame_start"], rec["audio_sample_start"] = emitted["frame_start"], emitted["sample_start"]
        rec["media_ready_s"] = emitted["emitted_s"]
    flush = steps.get(-1)
    gen_s = sum(r["generate_s"] for r in records)
    dec_v = sum(t.decode_video_s for t in decoder.timings)
    dec_a = sum(t.decode_audio_s for t in decoder.timings)
    return {
        "ttfc_media_s": worker.emitted[0]["emitted_s"], "generate_s": gen_s, "decode_video_s": dec_v,
        "decode_audio_s": dec_a, "decode_s": dec_v + dec_a, "decode_idle_s": worker.idle_s,
        "overlap_s": _overlap(records, decoder.timings), "final_flush": flush.as_dict() if flush else None,
        "video_decode": dataclasses.asdict(decoder.video_policy),
        "fps": decoder.decoders.fps, "sample_rate": decoder.decoders.sample_rate,
    }  # fmt: skip


def _block_record(res: object, wall: float) -> dict:
    return {
        "block": res.index,  # type: ignore[attr-defined]
        "video_pts_s": res.video_pts_s,  # type: ignore[attr-defined]
        "audio_pts_s": res.audio_pts_s,  # type: ignore[attr-defined]
        "video_frames": res.spec.pixel_frames,  # type: ignore[attr-defined]
        "audio_samples": res.spec.audio_samples,  # type: ignore[attr-defined]
        "kv_cache_bytes": getattr(res, "kv_cache_bytes", None),  # the engine's pool is preallocated
        "passes": _pass_records(res.timings),  # type: ignore[attr-defined]
        "ready_s": wall,
    }


def _pass_records(timings: Any) -> list[dict]:
    if isinstance(timings, dict):  # engine StreamChunk: pass_ms in order, the last is the refresh
        ms = timings["pass_ms"]
        return [{"kind": "refresh" if i == len(ms) - 1 else "denoise", "seconds": t / 1000} for i, t in enumerate(ms)]
    return [{"kind": t.kind, "sigma": t.sigma, "seconds": t.seconds} for t in timings]


def _cmd_info(args: argparse.Namespace) -> int:
    from omniforcing_rt.models import load_model

    loaded = load_model(args.model)
    cfg = loaded.model.config
    n = sum(p.numel() for p in loaded.model.parameters())
    sys.stdout.write(
        json.dumps({"model": loaded.name, "parameters": n, "config": cfg.to_metadata(), "info": loaded.info}, indent=1)
        + "\n"
    )
    return 0


def _cmd_distill(args: argparse.Namespace) -> int:
    from omniforcing_rt.distill.command import run_command

    return run_command(args)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="omniforcing-rt", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="stream a clip to an mp4 (or latents + a per-block report to a directory)")
    g.add_argument("prompt", nargs="?", default="a red ball bounces on a wooden floor", help="text prompt")
    g.add_argument("--model", default="default", help="model name or directory (default: the embedded 'default')")
    g.add_argument(
        "--seconds", type=float, default=5.0, help="duration; must be a valid block duration (e.g. 5 -> 5.04 s)"
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--window-seconds", type=float, default=None, help="rolling KV window per modality (default: keep all)"
    )
    g.add_argument("--out", default="out", help="CLIP.mp4: decode and write H.264 + AAC as the stream goes; "
                   "a directory: write latents.safetensors + report.json only")  # fmt: skip
    g.add_argument("--wav", default=None, metavar="PATH", help="also write the audio as 16-bit stereo WAV (mp4 mode)")
    g.add_argument("--fragments", default=None, metavar="DIR",
                   help="also write fragmented MP4: DIR/init.mp4 + one DIR/frag_NNNNN.m4s per block (mp4 mode)")  # fmt: skip
    g.add_argument("--latents", nargs="?", const="auto", default=None, metavar="PATH",
                   help="also save the latents (mp4 mode default: CLIP.latents.safetensors)")  # fmt: skip
    g.add_argument("--report", nargs="?", const="auto", default=None, metavar="PATH",
                   help="per-block JSON report (directory mode default: OUT/report.json; mp4 mode: CLIP.report.json)")  # fmt: skip
    g.add_argument("--engine", action="store_true",
                   help="generate with the compiled C++ engine (compiled once per model, then cached)")  # fmt: skip
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(fn=_cmd_generate)
    c = sub.add_parser("check-fixture", help="compare against a reference fixture; exit 1 beyond tolerance")
    c.add_argument("dir", help="fixture directory")
    c.add_argument(
        "--attention-backend", choices=("sdpa", "ofrt"), default="sdpa",
        help="temporal attention implementation: torch SDPA (default) or the ofrt kernel op",
    )  # fmt: skip
    c.set_defaults(fn=_cmd_check_fixture)
    i = sub.add_parser("info", help="describe a model")
    i.add_argument("--model", default="default")
    i.set_defaults(fn=_cmd_info)
    from omniforcing_rt.distill.command import add_arguments as add_distill_arguments

    d = sub.add_parser("distill", help="distillation stages: ode-pairs, ode, dmd, bidir-dmd")
    add_distill_arguments(d)
    d.set_defaults(fn=_cmd_distill)
    _add_bench_parser(sub)
    from omniforcing_rt.world.command import add_parsers as add_world_parsers

    add_world_parsers(sub)  # world sample / dataset / score, evaluate
    from omniforcing_rt.export.command import add_export_parser, add_verify_parser

    add_export_parser(sub)
    add_verify_parser(sub)
    return ap


def _add_bench_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="benchmark the C++ engine (optionally against the eager reference)")
    b.add_argument("--model", default="bench-cpu", help="model name, directory, or bench preset (default: bench-cpu)")
    b.add_argument("--compare", choices=["reference"], default=None, help="also run the eager reference loop")
    b.add_argument("--json", default=None, help="write the report to this JSON file")
    b.add_argument("--seconds", type=float, default=8.04, help="stream duration (a valid block duration)")
    b.add_argument("--window-seconds", type=float, default=3.0, help="KV window per modality (<= 0: whole stream)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--prompt", default="a red ball bounces on a wooden floor")
    b.add_argument("--threads", type=int, default=None, help="intra-op threads for both (default: torch's)")
    b.add_argument("--repeats", type=int, default=1, help="alternate the two this many times; report medians")
    b.add_argument("--page-size", type=int, default=64, help="KV page size in tokens")
    b.add_argument("--streams", type=int, default=1,
                   help="also measure N concurrent streams, batched and one at a time (aggregate FPS)")  # fmt: skip
    b.add_argument("--cache-dir", default=None, help="engine package cache (default: $OFRT_CACHE_DIR or ~/.cache)")
    b.set_defaults(fn=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    from omniforcing_rt.engine_bench import bench, format_report, write_json

    window = args.window_seconds if args.window_seconds and args.window_seconds > 0 else None
    report = bench(
        args.model, seconds=args.seconds, window_s=window, seed=args.seed, prompt=args.prompt, threads=args.threads,
        repeats=args.repeats, compare=args.compare, cache_dir=args.cache_dir, page_size_tokens=args.page_size,
        streams=args.streams,
    )  # fmt: skip
    sys.stdout.write(format_report(report) + "\n")
    if args.json:
        write_json(report, args.json)
    return 0


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
