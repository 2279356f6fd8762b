"""Streaming benchmark: the C++ engine against the eager PyTorch reference loop.

``omniforcing-rt bench --model <name|dir> --compare reference --json out.json`` (and
``benchmarks/bench_stream.py``) runs both implementations in one process on the same model,
prompt, seed, windows and thread count, and reports for each:

* ``ttfc_s``: time to first chunk, from the stream call (prompt encoding included for both) to
  the first block's latents in the caller's hands (no decoder yet: latents, not pixels);
* ``fps``: steady-state generated video frames per wall second, blocks 1..N-1;
* ``block_ms_p50`` / ``block_ms_p99``: per-block wall time as the consumer sees it (time between
  consecutive chunks), blocks 1..N-1;
* ``rtf``: real-time factor, wall time of the whole stream / media seconds (< 1 is faster than
  real time);
* ``kv_bytes``: KV memory: the engine's preallocated page pool plus the stream's text K/V, the
  reference's peak cache size (``BlockResult.kv_cache_bytes``); ``peak_rss_bytes``: the process's
  high-water mark after the run (cumulative: the later run includes the earlier);
* plus ``speedup`` (engine fps / reference fps), ``ttfc_speedup`` and ``max_abs_diff`` of all
  latents between the two.

Both are warmed up with one block first (Inductor/AOTI first-call costs excluded); compiling the
package is excluded (it is cached). With ``--repeats`` the two alternate and each metric is the
median over repeats, which damps noise from other load on the machine.

Model presets (besides names and directories): ``bench-cpu`` is the default bench configuration
for the 2-core CPU, chosen so that GEMMs and attention dominate the pass: 4 layers, video width
512 (8 x 64 heads), audio width 256 (8 x 32), the real 128-channel latents on an 8 x 12 latent grid
(288 video + 25 audio tokens per block), 64 text tokens, seeded random weights. It is written
once under the cache directory and loaded like any model directory.
"""

from __future__ import annotations

import json
import platform
import resource
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from omniforcing_rt.engine import Engine
from omniforcing_rt.engine_config import EngineConfig
from omniforcing_rt.errors import ConfigError

__all__ = ["BENCH_PRESETS", "RunStats", "bench", "format_report", "resolve_model"]

BENCH_PRESETS: dict[str, dict[str, Any]] = {
    "bench-cpu": {
        "arch": dict(
            num_layers=4,
            num_attention_heads=8,
            attention_head_dim=64,
            cross_attention_dim=512,
            audio_num_attention_heads=8,
            audio_attention_head_dim=32,
            audio_cross_attention_dim=256,
            caption_channels=256,
        ),  # fmt: skip
        "info": {"latent_grid_hw": [8, 12], "text_tokens": 64, "layout": "release", "seed": 0},
    },
}
"""Synthetic bench models: architecture overrides of the default model plus model.json fields."""


@dataclass
class RunStats:
    """Streaming metrics of one run (see the module docstring)."""

    ttfc_s: float
    fps: float
    block_ms_p50: float
    block_ms_p99: float
    rtf: float
    kv_bytes: int
    peak_rss_bytes: int
    wall_s: float
    blocks: int
    media_s: float


def resolve_model(name: str, cache_root: Path) -> Any:
    """Load a model by name or directory; ``bench-*`` presets are generated once under the cache."""
    from omniforcing_rt.model.transformer import AVTransformer
    from omniforcing_rt.models import init_random_weights, load_model, write_model_dir

    if name not in BENCH_PRESETS:
        return load_model(name)
    preset = BENCH_PRESETS[name]
    root = cache_root / "models" / name
    if not (root / "model.json").exists():
        base = load_model("default").model.config
        model = AVTransformer(base.with_(**preset["arch"]))
        init_random_weights(model, int(preset["info"]["seed"]))
        write_model_dir(root, model, {"name": name, **preset["info"]})
    return load_model(root)


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _stats(t0: float, ready: list[float], frames: list[int], media_s: float, kv_bytes: int) -> RunStats:
    gaps = [(b - a) * 1000 for a, b in zip(ready, ready[1:])] or [(ready[0] - t0) * 1000]
    steady_s = ready[-1] - ready[0]
    return RunStats(
        ttfc_s=ready[0] - t0,
        fps=sum(frames[1:]) / steady_s if steady_s > 0 else float("nan"),
        block_ms_p50=_percentile(gaps, 0.5),
        block_ms_p99=_percentile(gaps, 0.99),
        rtf=(ready[-1] - t0) / media_s,
        kv_bytes=kv_bytes,
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        wall_s=ready[-1] - t0,
        blocks=len(ready),
        media_s=media_s,
    )


def run_reference(engine: Engine, prompt: str, seed: int, seconds: float) -> tuple[RunStats, list[torch.Tensor]]:
    """The eager reference loop (pipeline/stream.py) with the engine's geometry, windows and seed."""
    from omniforcing_rt.pipeline.stream import StreamingGenerator

    layout = engine.layout(seconds)
    gen = StreamingGenerator(engine.loaded.model, engine.config.stream_config(engine.loaded.stream))
    ready, frames, lat, kv = [], [], [], 0
    t0 = time.perf_counter()
    with torch.no_grad():
        text = engine.text_context(prompt)
        for res in gen.stream(text, seed, layout.num_blocks):
            ready.append(time.perf_counter())
            frames.append(res.spec.pixel_frames)
            lat += [res.video_latents, res.audio_latents]
            kv = max(kv, res.kv_cache_bytes)
    return _stats(t0, ready, frames, layout.duration_s, kv), lat


def run_engine(engine: Engine, prompt: str, seed: int, seconds: float) -> tuple[RunStats, list[torch.Tensor]]:
    """The C++ engine: one stream, consumed as fast as it comes."""
    layout = engine.layout(seconds)
    ready, frames, lat = [], [], []
    t0 = time.perf_counter()
    with engine.stream(prompt, seed=seed, seconds=seconds) as stream:
        for chunk in stream:
            ready.append(time.perf_counter())
            frames.append(chunk.spec.pixel_frames)
            lat += [chunk.video_latents, chunk.audio_latents]
    m = engine.loaded.model.config
    text_bytes = 2 * m.num_layers * engine.loaded.text_tokens * (m.video_dim + m.audio_dim) * 4
    return _stats(t0, ready, frames, layout.duration_s, engine.stats()["pool_bytes"] + text_bytes), lat


def run_engine_streams(engine: Engine, prompt: str, seed: int, seconds: float, streams: int) -> float:
    """``streams`` concurrent streams (seeds seed..seed+n-1), each consumed by its own thread;
    returns the aggregate generated video frames per wall second (all blocks, all streams)."""
    import threading

    frames = [0] * streams

    def consume(i: int, stream: Any) -> None:
        with stream:
            frames[i] = sum(c.spec.pixel_frames for c in stream)

    t0 = time.perf_counter()
    handles = [engine.stream(prompt, seed=seed + i, seconds=seconds) for i in range(streams)]
    threads = [threading.Thread(target=consume, args=(i, h)) for i, h in enumerate(handles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(frames) / (time.perf_counter() - t0)


def bench_streams(engine: Engine, prompt: str, seed: int, seconds: float, streams: int) -> dict[str, Any]:
    """Aggregate throughput of ``streams`` concurrent streams, batched (the engine's
    max_batch_streams) and unbatched (max_batch_streams=1, same package), in one process."""
    out: dict[str, Any] = {"streams": streams}
    for name, batch in (("batched", streams), ("unbatched", 1)):
        cfg = replace(engine.config, max_streams=streams, max_batch_streams=batch)
        eng = Engine.from_pretrained(engine.loaded, cfg)
        try:
            run_engine_streams(eng, prompt, seed + 1, eng.layout_for_blocks(2).duration_s, streams)  # warm-up
            out[f"{name}_fps"] = run_engine_streams(eng, prompt, seed, seconds, streams)
        finally:
            eng.close()
    out["batching_gain"] = out["batched_fps"] / out["unbatched_fps"]
    return out


def _median_stats(runs: list[RunStats]) -> RunStats:
    d = {k: statistics.median(getattr(r, k) for r in runs) for k in asdict(runs[0])}
    d["blocks"], d["kv_bytes"], d["peak_rss_bytes"] = runs[0].blocks, runs[0].kv_bytes, runs[-1].peak_rss_bytes
    return RunStats(**d)


def _environment(engine: Engine, threads: int) -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False, timeout=5
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": len(__import__("os").sched_getaffinity(0)),
        "threads": threads,
        "torch": torch.__version__,
        "commit": commit,
        "config_hash": engine.config_hash,
    }


def bench(
    model: str = "bench-cpu", *, seconds: float = 8.04, window_s: float | None = 3.0, seed: int = 0,
    prompt: str = "a red ball bounces on a wooden floor", threads: int | None = None, repeats: int = 1,
    compare: str | None = "reference", cache_dir: str | None = None, page_size_tokens: int = 64,
    streams: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """Run the benchmark and return the report dict (see the module docstring)."""
    from omniforcing_rt.compile.export import default_cache_dir

    problems = [] if compare in (None, "reference") else [f"--compare must be 'reference', got {compare!r}"]
    if not isinstance(streams, int) or streams < 1:
        problems.append(f"--streams must be a positive integer, got {streams!r}")
    if problems:
        raise ConfigError("invalid bench options", problems)
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    loaded = resolve_model(model, cache)
    cfg = EngineConfig(
        video_window_s=window_s, audio_window_s=window_s, max_stream_s=max(seconds, 1.0), max_streams=1,
        num_threads=threads, cache_dir=str(cache), page_size_tokens=page_size_tokens, kv_budget_bytes=None,
    )  # fmt: skip
    t = time.perf_counter()
    engine = Engine.from_pretrained(loaded, cfg)
    setup_s = time.perf_counter() - t
    warm = engine.layout_for_blocks(1).duration_s
    run_engine(engine, prompt, seed + 1, warm)  # warm-up, not timed
    if compare:
        run_reference(engine, prompt, seed + 1, warm)
    eng_runs, ref_runs, diff = [], [], None
    for _ in range(repeats):
        if compare:
            stats, ref_lat = run_reference(engine, prompt, seed, seconds)
            ref_runs.append(stats)
        stats, eng_lat = run_engine(engine, prompt, seed, seconds)
        eng_runs.append(stats)
        if compare and diff is None:
            diff = max((a - b).abs().max().item() for a, b in zip(eng_lat, ref_lat, strict=True))
    report: dict[str, Any] = {
        "model": model, "seconds": engine.layout(seconds).duration_s, "window_s": window_s, "seed": seed,
        "repeats": repeats, "engine_setup_s": setup_s, "environment": _environment(engine, threads),
        "engine_config": engine.config.to_dict(), "engine": asdict(_median_stats(eng_runs)),
    }  # fmt: skip
    if streams > 1:
        report["multi_stream"] = bench_streams(engine, prompt, seed, seconds, streams)
    if compare:
        ref = _median_stats(ref_runs)
        report["reference"] = asdict(ref)
        report["speedup"] = report["engine"]["fps"] / ref.fps
        report["ttfc_speedup"] = ref.ttfc_s / report["engine"]["ttfc_s"]
        report["max_abs_diff"] = diff
    return report


def format_report(r: dict[str, Any]) -> str:
    """A markdown table of the report."""
    cols = [("engine", r["engine"])] + ([("reference", r["reference"])] if "reference" in r else [])
    rows = [
        ("TTFC (s)", "ttfc_s", "{:.3f}"), ("steady FPS", "fps", "{:.1f}"), ("block p50 (ms)", "block_ms_p50", "{:.1f}"),
        ("block p99 (ms)", "block_ms_p99", "{:.1f}"), ("real-time factor", "rtf", "{:.3f}"),
        ("KV bytes", "kv_bytes", "{:,}"), ("peak RSS (MB)", "peak_rss_bytes", "{}"),
    ]  # fmt: skip
    out = ["| metric | " + " | ".join(n for n, _ in cols) + " |", "|---|" + "---|" * len(cols)]
    for label, key, fmt in rows:
        vals = [c[key] // (1 << 20) if key == "peak_rss_bytes" else c[key] for _, c in cols]
        out.append(f"| {label} | " + " | ".join(fmt.format(v) for v in vals) + " |")
    env = r["environment"]
    out.append("")
    out.append(
        f"model {r['model']}, {r['seconds']:.2f} s, window {r['window_s']} s, {env['threads']} threads, "
        f"torch {env['torch']}, commit {env['commit']}, config_hash {env['config_hash']}"
    )
    if "multi_stream" in r:
        m = r["multi_stream"]
        out.append(
            f"{m['streams']} concurrent streams: {m['batched_fps']:.1f} FPS batched, {m['unbatched_fps']:.1f} FPS "
            f"one at a time (batching gain {m['batching_gain']:.2f}x)"
        )
    if "speedup" in r:
        out.append(
            f"speedup (fps) {r['speedup']:.2f}x, TTFC {r['ttfc_speedup']:.2f}x, max_abs_diff {r['max_abs_diff']:.2e}"
        )
    return "\n".join(out)


def write_json(report: dict[str, Any], path: str) -> None:
    """Write the report as JSON."""
    Path(path).write_text(json.dumps(report, indent=1) + "\n")
