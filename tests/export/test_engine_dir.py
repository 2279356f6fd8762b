"""Done means: a tiny model exported to an engine directory and streamed by the C++ engine from it.

The engine loads the AOTI package inside the directory (nothing is compiled) and must match the
Python StreamingGenerator block by block, as the engine built from the model does
(tests/runtime/test_engine.py, same tolerance).
"""

from __future__ import annotations

import pytest
from omniforcing_rt.export.manifest import ExportManifest

from omniforcing_rt.engine import Engine, EngineConfig
from omniforcing_rt.errors import CheckpointError, ConfigError
from omniforcing_rt.pipeline.stream import StreamingGenerator

from .conftest import PAGE

TOL = 1e-4
PROMPT = "a red ball bounces on a wooden floor"


def test_engine_streams_from_the_exported_directory(engine_dir, monkeypatch):
    import omniforcing_rt.compile.export as compile_export

    def no_compile(*a, **k):
        raise AssertionError("an engine directory must not be recompiled")

    monkeypatch.setattr(compile_export, "ensure_package", no_compile)
    engine = Engine.from_pretrained(
        engine_dir, EngineConfig(page_size_tokens=PAGE, video_window_s=1.0, audio_window_s=1.0)
    )
    assert engine.package_dir == engine_dir / "aoti"
    assert engine.config.latent_grid_hw == (2, 3)
    seconds = 4.04  # 4 blocks: block 0 + 3 standard blocks, evicting from block 2
    layout = engine.layout(seconds)
    with engine.stream(PROMPT, seed=4, seconds=seconds) as stream:
        chunks = list(stream)
    scfg = engine.config.stream_config(engine.loaded.stream)
    refs = list(StreamingGenerator(engine.loaded.model, scfg).stream(engine.text_context(PROMPT), 4, layout.num_blocks))
    assert len(chunks) == len(refs) == layout.num_blocks
    for c, r in zip(chunks, refs):
        assert c.spec == r.spec
        diff = max((c.video_latents - r.video_latents).abs().max().item(),
                   (c.audio_latents - r.audio_latents).abs().max().item())  # fmt: skip
        assert diff <= TOL, (c.index, diff)
    engine.close()


def test_engine_rejects_a_config_the_directory_was_not_exported_for(engine_dir):
    with pytest.raises(ConfigError, match="dtype: requested 'bfloat16'"):
        Engine.from_pretrained(engine_dir, EngineConfig(page_size_tokens=PAGE, dtype="bfloat16"))


def test_engine_rejects_a_damaged_directory(engine_copy):
    m = ExportManifest.read(engine_copy)
    (engine_copy / m.artefact("aoti-package").path).unlink()
    with pytest.raises(CheckpointError, match="missing artefact"):
        Engine.from_pretrained(engine_copy)
