"""EngineConfig (Python) against its C++ parser, the KV plan and the config hash."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from omniforcing_rt import _C
from omniforcing_rt.compile.export import model_fingerprint, package_manifest
from omniforcing_rt.engine_config import EngineConfig
from omniforcing_rt.errors import CacheCapacityError, ConfigError
from omniforcing_rt.models import load_model
from omniforcing_rt.pipeline.schedule import student_sigmas

T = _C._testing


@pytest.fixture(scope="module")
def loaded():
    return load_model("default")


def test_every_field_has_a_docstring():
    import ast
    import inspect

    from omniforcing_rt import engine_config

    tree = ast.parse(inspect.getsource(engine_config.EngineConfig))
    body = tree.body[0].body
    for i, node in enumerate(body):
        if isinstance(node, ast.AnnAssign):
            nxt = body[i + 1]
            assert isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant), node.target.id


def test_validate_lists_every_problem():
    with pytest.raises(ConfigError) as e:
        EngineConfig(device="tpu", dtype="int8", page_size_tokens=0, max_streams=0, queue_depth=-1, video_window_s=0.1)
    assert len(e.value.problems) == 6
    assert isinstance(e.value, ValueError)


def test_json_round_trip_through_cpp(loaded):
    cfg = EngineConfig(video_window_s=2.0, audio_window_s=3.5, num_threads=2, kv_budget_bytes=None).resolve(
        loaded.stream
    )
    assert cfg.resolved and EngineConfig.from_json(cfg.to_json()) == cfg
    back = json.loads(T.engine_config_roundtrip(cfg.to_json()))
    mine = {k: v for k, v in json.loads(cfg.to_json()).items() if k != "cache_dir"}
    assert back == mine
    info = T.engine_config_info(cfg.to_json())
    want = [float(s) for s in student_sigmas(cfg.denoising_step_list) if float(s) > 0]
    assert info["pass_sigmas"] == want  # C++ student_sigmas, bit for bit


def test_cpp_rejects_what_python_would(loaded):
    d = json.loads(EngineConfig().resolve(loaded.stream).to_json())
    d.update(page_size_tokens=0, context_noise=1000, layout_kind="other")
    with pytest.raises(ConfigError) as e:
        T.engine_config_roundtrip(json.dumps(d))
    assert len(e.value.problems) >= 2
    with pytest.raises(ConfigError):
        T.engine_config_roundtrip("{not json")
    with pytest.raises(ConfigError):  # unresolved geometry
        T.engine_config_roundtrip(EngineConfig().to_json())


def test_hash_covers_only_artefact_fields(loaded):
    fp = model_fingerprint(loaded.model, loaded.stream.convention)
    base = EngineConfig()
    h = base.config_hash(fp, torch.__version__)
    same = [dict(video_window_s=3.0), dict(max_streams=5), dict(queue_depth=9), dict(kv_budget_bytes=1 << 20),
            dict(device="cpu:0"), dict(debug_pass_delay_ms=3.0), dict(cache_dir="/x")]  # fmt: skip
    for change in same:
        assert dataclasses.replace(base, **change).config_hash(fp, torch.__version__) == h, change
    for change in (dict(dtype="bfloat16"), dict(page_size_tokens=32), dict(device="cuda")):
        assert dataclasses.replace(base, **change).config_hash(fp, torch.__version__) != h, change
    assert base.config_hash(fp + "x", torch.__version__) != h
    assert base.config_hash(fp, "0.0") != h


def test_kv_plan_and_budget(loaded):
    conv = loaded.stream.convention
    cfg = EngineConfig(video_window_s=2.0, audio_window_s=1.0, page_size_tokens=16, max_streams=3).resolve(
        loaded.stream
    )
    manifest = json.dumps(package_manifest(loaded.model, conv, cfg, "x"))
    plan = _C.plan_kv_cache(cfg.to_json(), manifest)
    mc = loaded.model.config
    h, w = cfg.latent_grid_hw
    # video: block 0 = 4 frames, later 3; window 2 blocks -> pinned + 3 groups
    v0, v = -(-4 * h * w // 16), -(-3 * h * w // 16)
    assert plan["video_pages_per_stream"] == v0 + 3 * v
    assert plan["audio_pages_per_stream"] == 2 + 2 * 2  # 26 and 25 tokens, window 1 -> 2 groups
    assert plan["video_pool_pages"] == 3 * plan["video_pages_per_stream"]
    unit = 2 * mc.num_layers * 16 * 4
    assert plan["video_page_bytes"] == unit * (mc.video_dim + mc.av_cross_dim)
    assert plan["pool_bytes"] == (
        plan["video_pool_pages"] * plan["video_page_bytes"] + plan["audio_pool_pages"] * plan["audio_page_bytes"]
    )
    tight = dataclasses.replace(cfg, kv_budget_bytes=plan["pool_bytes"] - 1)
    with pytest.raises(CacheCapacityError, match="kv_budget_bytes"):
        _C.plan_kv_cache(tight.to_json(), manifest)
    # a window of None is sized by max_stream_s: 20 s = 1 + 19 blocks
    whole = dataclasses.replace(cfg, video_window_s=None, audio_window_s=None, max_stream_s=20.0)
    assert T.engine_config_info(whole.to_json())["max_stream_blocks"] == 20
