"""The engine's per-block RoPE inputs (csrc/runtime/engine_rope.cc) == AVTransformer.rope, bit for bit.

Covers both conventions the models use (streaming: interleaved, causal float64 positions, float64
angles; teacher: split, patchifier float32 positions, float64 grid), audio sinks (identity rows),
and absolute times far into a stream.
"""

from __future__ import annotations

import json

import pytest
import torch

from omniforcing_rt import _C
from omniforcing_rt.compile.export import package_manifest
from omniforcing_rt.engine_config import EngineConfig
from omniforcing_rt.model.config import Convention
from omniforcing_rt.model.positions import audio_positions, video_positions
from omniforcing_rt.model.transformer import AVTransformer
from omniforcing_rt.models import init_random_weights, load_model

HW = (4, 6)


def _tiny(sinks: int) -> AVTransformer:
    cfg = load_model("default").model.config.with_(num_layers=1, audio_sink_tokens=sinks)
    m = AVTransformer(cfg)
    init_random_weights(m, 0)
    return m


@pytest.mark.parametrize("conv_name", ["streaming", "teacher", "student"])
@pytest.mark.parametrize("sinks", [0, 3])
@pytest.mark.parametrize(
    ("vstart", "vframes", "astart", "aframes"), [(0, 4, 0, 26), (4, 3, 26, 25), (1801, 3, 15001, 25)]
)
def test_tables_bit_identical(conv_name, sinks, vstart, vframes, astart, aframes):
    model = _tiny(sinks)
    conv = getattr(Convention, conv_name)()
    manifest = json.dumps(package_manifest(model, conv, EngineConfig(), "x"))
    s = sinks if vstart == 0 else 0
    got = [torch.from_dlpack(c) for c in _C._testing.rope_inputs(manifest, vstart, vframes, astart, aframes, s, *HW)]
    vpos = video_positions(vstart, vframes, *HW, 1, conv.position_style, conv.position_dtype)
    apos = audio_positions(astart, aframes, 1, conv.position_style, conv.position_dtype)
    assert torch.equal(got[8], vpos) and got[8].dtype == vpos.dtype
    assert torch.equal(got[9], apos)
    ref = model.rope(vpos, apos, conv, torch.float32, s)
    want = [t for pair in (ref.video, ref.audio, ref.video_cross, ref.audio_cross) for t in pair]
    for g, w in zip(got[:8], want, strict=True):
        assert g.shape == w.shape and torch.equal(g, w)
