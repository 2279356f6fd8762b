"""The C++ engine against the PyTorch streaming pipeline, block by block, on the same seeds.

Packages are compiled once per session into one cache directory ($OFRT_CACHE_DIR when set, so a
developer can keep them between runs) and shared by every engine of a model: configs that differ
only in windows, streams, queue depth or debug knobs reuse the same package. Two packages are
built: the embedded ``default`` model (release layout, no sinks) and a one-layer model with audio
sink tokens whose ``model.json`` asks for the paper layout.

Parity: fp32 CPU, max |engine - reference| <= 1e-4 for video and audio latents of every block,
for both layouts, with sinks, and with windows shorter than the stream (eviction by rotation).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

import pytest
import torch

from omniforcing_rt import _C
from omniforcing_rt.engine import Engine, EngineConfig, StreamChunk
from omniforcing_rt.errors import CacheCapacityError, ConfigError, EngineDeadError, InputError, StreamAbortedError
from omniforcing_rt.model.transformer import AVTransformer
from omniforcing_rt.models import init_random_weights, load_model, write_model_dir
from omniforcing_rt.pipeline.stream import StreamingGenerator

TOL = 1e-4
PROMPT = "a red ball bounces on a wooden floor"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> str:
    return os.environ.get("OFRT_CACHE_DIR") or str(tmp_path_factory.getbasetemp() / "engines")


@pytest.fixture(scope="session")
def default_model():
    return load_model("default")


@pytest.fixture(scope="session")
def sinks_model(tmp_path_factory):
    base = load_model("default").model.config
    cfg = base.with_(num_layers=1, audio_sink_tokens=4)
    model = AVTransformer(cfg)
    init_random_weights(model, 7)
    root = Path(tmp_path_factory.mktemp("sinks_model"))
    write_model_dir(
        root, model, {"latent_grid_hw": [2, 3], "layout": "paper", "text_tokens": 8, "audio_sink_tokens": 4}
    )
    return load_model(root)


def make_engine(loaded, cache_dir, **cfg) -> Engine:
    return Engine.from_pretrained(loaded, EngineConfig(cache_dir=cache_dir, page_size_tokens=16, **cfg))


def reference(engine: Engine, prompt, seed: int, num_blocks: int | None):
    loaded = engine.loaded
    scfg = engine.config.stream_config(loaded.stream)
    return StreamingGenerator(loaded.model, scfg).stream(engine.text_context(prompt), seed, num_blocks)


def max_diff(chunk: StreamChunk, ref) -> float:
    assert chunk.index == ref.index and chunk.spec == ref.spec
    assert chunk.video_latents.shape == ref.video_latents.shape
    assert chunk.audio_latents.shape == ref.audio_latents.shape
    return max(
        (chunk.video_latents - ref.video_latents).abs().max().item(),
        (chunk.audio_latents - ref.audio_latents).abs().max().item(),
    )


def run_parity(engine: Engine, seed: int, seconds: float) -> list[float]:
    layout = engine.layout(seconds)
    with engine.stream(PROMPT, seed=seed, seconds=seconds) as stream:
        chunks = list(stream)
        stats = stream.stats()
    refs = list(reference(engine, PROMPT, seed, layout.num_blocks))
    assert len(chunks) == len(refs) == layout.num_blocks
    assert stats["state"] == "finished" and stats["passes_done"] == layout.num_blocks * 5
    return [max_diff(c, r) for c, r in zip(chunks, refs)]


# ----------------------------------------------------------------------------- parity
def test_parity_release_layout_across_window_eviction(default_model, cache_dir):
    engine = make_engine(default_model, cache_dir, video_window_s=2.0, audio_window_s=1.0)
    assert engine.stats()["video_window_blocks"] == 2 and engine.stats()["audio_window_blocks"] == 1
    diffs = run_parity(engine, seed=3, seconds=7.04)  # 7 blocks: evicts from block 3 (video) / 2 (audio)
    assert max(diffs) <= TOL, diffs
    assert engine.stats()["video_free_pages"] == engine.stats()["video_pool_pages"]  # released


def test_parity_release_layout_whole_history(default_model, cache_dir):
    engine = make_engine(default_model, cache_dir, max_stream_s=4.04)
    assert max(run_parity(engine, seed=11, seconds=4.04)) <= TOL


def test_parity_paper_layout_with_sinks(sinks_model, cache_dir):
    engine = make_engine(sinks_model, cache_dir, video_window_s=1.0, audio_window_s=2.0)
    assert engine.config.layout_kind == "paper" and engine.layout(5.0).audio_sink_tokens == 4
    diffs = run_parity(engine, seed=5, seconds=5.0)  # 1 + 5 blocks
    assert max(diffs) <= TOL, diffs


def test_parity_release_layout_with_sinks(sinks_model, cache_dir):
    engine = make_engine(sinks_model, cache_dir, layout_kind="release", video_window_s=1.0, audio_window_s=1.0)
    assert max(run_parity(engine, seed=6, seconds=4.04)) <= TOL


# ---------------------------------------------------------------------- streams, memory
def test_open_ended_stream_outlives_its_window_at_constant_memory(default_model, cache_dir):
    engine = make_engine(default_model, cache_dir, video_window_s=1.0, audio_window_s=1.0)
    before = engine.stats()
    ref = reference(engine, PROMPT, 21, None)
    with engine.stream(PROMPT, seed=21) as stream:
        assert stream.num_blocks is None
        reserved = (stream.stats()["video_pages"], stream.stats()["audio_pages"])
        for k, chunk in zip(range(9), stream):
            assert max_diff(chunk, next(ref)) <= TOL
            st = stream.stats()
            assert (st["video_pages"], st["audio_pages"]) == reserved  # no growth, ever
            assert len(st["video_blocks"]) <= 2 and k >= 0
        stream.cancel()
        assert list(stream) == []
    after = engine.stats()
    assert after["pool_bytes"] == before["pool_bytes"] == after["planned_pool_bytes"]
    assert after["video_free_pages"] == before["video_free_pages"]


def test_back_pressure_stops_a_stream_with_a_full_queue(default_model, cache_dir):
    engine = make_engine(default_model, cache_dir, video_window_s=1.0, audio_window_s=1.0, queue_depth=1)
    with engine.stream(PROMPT, seed=1, seconds=5.04) as stream:
        deadline = time.time() + 60
        while stream.stats()["queued_chunks"] < 1 and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # give the worker time to (wrongly) start another block
        st = stream.stats()
        assert st["queued_chunks"] == 1 and st["blocks_done"] == 1 and st["passes_done"] == 5
        assert stream.next_chunk().index == 0
        assert stream.next_chunk(timeout_s=60).index == 1  # consuming lets it run again
        assert [c.index for c in stream] == [2, 3, 4]


def test_cancel_mid_block(default_model, cache_dir):
    engine = make_engine(default_model, cache_dir, video_window_s=1.0, audio_window_s=1.0, debug_pass_delay_ms=50.0)
    stream = engine.stream(PROMPT, seed=2, seconds=5.04)
    deadline = time.time() + 60
    while stream.stats()["passes_done"] < 2 and time.time() < deadline:
        time.sleep(0.005)
    stream.cancel()
    deadline = time.time() + 30
    while stream.stats()["state"] == "running" and time.time() < deadline:
        time.sleep(0.005)
    st = stream.stats()
    assert st["state"] == "cancelled" and st["blocks_done"] == 0 and 2 <= st["passes_done"] < 5
    assert st["video_pages"] == 0 and engine.stats()["video_free_pages"] == engine.stats()["video_pool_pages"]
    with pytest.raises(StreamAbortedError):
        stream.next_chunk(timeout_s=1)
    assert list(stream) == []  # iteration after cancel() just ends
    stream.close()
    # the engine is still usable and exact
    fast = make_engine(default_model, cache_dir, video_window_s=1.0, audio_window_s=1.0)
    with fast.stream(PROMPT, seed=2, seconds=1.04) as again:
        ref = next(reference(fast, PROMPT, 2, 1))
        assert max_diff(next(again), ref) <= TOL


def test_concurrent_streams_and_capacity(default_model, cache_dir):
    engine = make_engine(default_model, cache_dir, video_window_s=1.0, audio_window_s=1.0, max_streams=2)
    a = engine.stream(PROMPT, seed=31, seconds=3.04)
    b = engine.stream("a dog barks", seed=32, seconds=3.04)
    with pytest.raises(CacheCapacityError):
        engine.stream(PROMPT, seed=33, seconds=1.04)
    results: dict[str, list[StreamChunk]] = {}

    def consume(name, stream):
        results[name] = list(stream)

    threads = [threading.Thread(target=consume, args=(n, s)) for n, s in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for name, prompt, seed in (("a", PROMPT, 31), ("b", "a dog barks", 32)):
        refs = list(reference(engine, prompt, seed, 3))
        assert max(max_diff(c, r) for c, r in zip(results[name], refs, strict=True)) <= TOL
    a.close()
    b.close()
    with engine.stream(PROMPT, seed=33, seconds=1.04) as c:  # pages came back
        assert len(list(c)) == 1


@pytest.mark.parametrize("max_batch", [4, 1])
def test_streams_with_equal_shapes_share_batched_passes(default_model, cache_dir, max_batch):
    """Three streams (one with another prompt) batch from the block where their histories agree;
    every block still equals its own single-stream reference. max_batch_streams=1 never batches."""
    engine = make_engine(default_model, cache_dir, video_window_s=1.0, audio_window_s=1.0, max_streams=3,
                         queue_depth=4, max_batch_streams=max_batch)  # fmt: skip
    jobs = [(PROMPT, 41), ("a dog barks", 42), (PROMPT, 43)]
    streams = [engine.stream(p, seed=s, seconds=4.04) for p, s in jobs]
    chunks = [list(st) for st in streams]
    batch_sizes = [c.timings["batch_streams"] for cs in chunks for c in cs]
    for (prompt, seed), got in zip(jobs, chunks):
        refs = list(reference(engine, prompt, seed, 4))
        assert max(max_diff(c, r) for c, r in zip(got, refs, strict=True)) <= TOL
    for st in streams:
        st.close()
    if max_batch == 1:
        assert set(batch_sizes) == {1}
    else:
        assert max(batch_sizes) == 3, batch_sizes  # blocks 1.. of all three in one pass
        assert all(len(c.timings["pass_ms"]) == 5 for cs in chunks for c in cs)
    assert engine.stats()["video_free_pages"] == engine.stats()["video_pool_pages"]


def test_waiting_releases_the_gil(default_model, cache_dir):
    engine = make_engine(default_model, cache_dir, video_window_s=1.0, audio_window_s=1.0, debug_pass_delay_ms=40.0)
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    with engine.stream(PROMPT, seed=4, seconds=1.04) as stream:
        chunk = stream.next_chunk()
    stop.set()
    t.join()
    assert chunk.index == 0 and len(ticks) > 50  # >= 200 ms of passes: the ticker kept running
    assert set(chunk.timings) >= {"plan_ms", "noise_ms", "denoise_ms", "refresh_ms", "commit_ms", "block_ms"}
    assert len(chunk.timings["pass_ms"]) == 5 and chunk.ready_s > 0
    assert chunk.video_pts_s == 0.0 and chunk.audio_pts_samples == 0


# ------------------------------------------------------------------------------ errors
def test_budget_is_checked_before_compiling_or_allocating(default_model, tmp_path):
    with pytest.raises(CacheCapacityError, match="kv_budget_bytes"):
        Engine.from_pretrained(default_model, EngineConfig(cache_dir=str(tmp_path), kv_budget_bytes=1000))
    assert list(tmp_path.iterdir()) == []


def test_stream_errors(default_model, cache_dir):
    engine = make_engine(default_model, cache_dir, max_stream_s=3.04)
    with pytest.raises(CacheCapacityError, match="window"):
        engine.stream(PROMPT, seed=0)  # open-ended with whole-history caches
    with pytest.raises(CacheCapacityError):
        engine.stream(PROMPT, seed=0, seconds=5.04)  # longer than max_stream_s
    with pytest.raises(ConfigError):
        engine.stream(PROMPT, seed=0, seconds=2.5)  # not a block duration
    with pytest.raises(InputError):
        engine.stream(PROMPT, seed="0")
    with pytest.raises(InputError):
        engine.stream(1234, seed=0)
    bad = [torch.zeros(3, 4, 5)] * 4 + [torch.zeros(1, 1, 1, 4)]
    with pytest.raises(InputError):
        engine._native.start_stream(*bad, 0, 1)
    with pytest.raises(ConfigError):
        _C.Engine(dataclasses.replace(engine.config, page_size_tokens=32).to_json(), str(engine.package_dir))
    stream = engine.stream(PROMPT, seed=0, seconds=1.04)
    engine.close()
    with pytest.raises(EngineDeadError):
        engine.stream(PROMPT, seed=0, seconds=1.04)
    with pytest.raises(EngineDeadError):
        stream.next_chunk()
    stream.close()


# ------------------------------------------------------------------------------- bench
def test_bench_cli_reports_both(default_model, cache_dir, tmp_path):
    import json

    from omniforcing_rt.cli import main

    out = tmp_path / "bench.json"
    args = ["bench", "--model", "default", "--compare", "reference", "--seconds", "3.04", "--page-size", "16"]
    assert main([*args, "--cache-dir", cache_dir, "--json", str(out), "--streams", "2"]) == 0
    r = json.loads(out.read_text())
    m = r["multi_stream"]
    assert m["streams"] == 2 and m["batched_fps"] > 0 and m["unbatched_fps"] > 0 and m["batching_gain"] > 0
    for side in ("engine", "reference"):
        assert r[side]["blocks"] == 3 and r[side]["ttfc_s"] > 0 and r[side]["fps"] > 0
        assert r[side]["block_ms_p50"] <= r[side]["block_ms_p99"]
    assert r["max_abs_diff"] <= TOL and r["speedup"] > 0 and r["environment"]["config_hash"]
