import json
import math

import pytest
import torch
from safetensors.torch import load_file
from tests.helpers.tiny_model import TINY_REF, need

from omniforcing_rt.model.config import Convention, ModelConfig, RopeType
from omniforcing_rt.model.rope import apply_rope, identity_rows, rope_tables
from omniforcing_rt.model.transformer import AVTransformer


def _video_pos(t=3, hw=2):
    from omniforcing_rt.model.positions import video_positions
    return video_positions(0, t, hw, hw, style="patchifier")


def test_interleaved_and_split_are_different_rotations_preserving_pair_norms():
    dim, heads = 24, 2
    pos = _video_pos()
    x = torch.randn(1, pos.shape[2], dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    il = Convention(rope_type="interleaved")
    sp = Convention(rope_type="split")
    ci, si = rope_tables(pos, dim, heads, (20, 2048, 2048), 10000.0, il, torch.float64)
    cs, ss = rope_tables(pos, dim, heads, (20, 2048, 2048), 10000.0, sp, torch.float64)
    yi = apply_rope(x, ci, si, RopeType.INTERLEAVED)
    ys = apply_rope(x, cs, ss, RopeType.SPLIT)
    assert (yi - ys).abs().max() > 1e-2  # different functions of the same input
    assert (yi - x).abs().max() > 1e-2
    # interleaved pairs (2j, 2j+1)
    pn = lambda t: t.unflatten(-1, (-1, 2)).norm(dim=-1)  # noqa: E731
    torch.testing.assert_close(pn(yi), pn(x), atol=1e-6, rtol=0)  # tables are fp32 angles cast to fp64
    # split pairs (i, i + d/2) inside each head
    def sn(t):
        h = t.unflatten(-1, (heads, 2, -1))
        return (h[..., 0, :] ** 2 + h[..., 1, :] ** 2).sqrt()
    torch.testing.assert_close(sn(ys), sn(x), atol=1e-6, rtol=0)  # tables are fp32 angles cast to fp64
    # and split does NOT preserve the interleaved pair norms (it is a different pairing)
    assert (pn(ys) - pn(x)).abs().max() > 1e-3


@pytest.mark.parametrize("rope_type", ["interleaved", "split"])
def test_identity_rows_leave_vectors_unchanged(rope_type):
    conv = Convention(rope_type=rope_type)
    pos = torch.tensor([[[[0.5, 0.5], [3.0, 3.0], [7.25, 7.25]]]], dtype=torch.float32)
    dim, heads, rows = 8, 2, 3
    c, s = rope_tables(pos, dim, heads, (20,), 10000.0, conv)
    c2, s2 = identity_rows(c, s, rows)
    assert c2.shape[-2] == c.shape[-2] + rows
    x = torch.randn(1, rows + 3, dim, generator=torch.Generator().manual_seed(0))
    y = apply_rope(x, c2, s2, conv.rope_type)
    assert torch.equal(y[:, :rows], x[:, :rows])
    assert (y[:, rows:] - x[:, rows:]).abs().max() > 1e-3
    # identity is NOT position 0: a token at t=0 is rotated
    c0, s0 = rope_tables(torch.zeros(1, 1, 1, 2), dim, heads, (20,), 10000.0, conv)
    assert (apply_rope(x[:, :1], c0, s0, conv.rope_type) - x[:, :1]).abs().max() > 1e-3


def test_angle_precision_at_600_seconds():
    dim, heads, max_pos, theta = 16, 2, (20,), 10000.0
    mids = torch.tensor([600.0, 600.5, 600.01, 601.25], dtype=torch.float64)
    pos = torch.stack([mids, mids], -1)[None, None]  # [1, 1, T, 2] float64
    n = dim // 2
    grid = torch.tensor([(math.pi / 2) * theta ** (i / (n - 1)) for i in range(n)], dtype=torch.float64)
    angle = grid[None, :] * (2 * mids[:, None] / max_pos[0] - 1)  # [T, n], float64 truth
    true_cos = angle.cos().repeat_interleave(2, -1)[None]
    true_sin = angle.sin().repeat_interleave(2, -1)[None]
    wide = Convention(frequencies_precision="float64", rope_angle_precision="float64")
    narrow = Convention(frequencies_precision="float64", rope_angle_precision="float32")
    cw, sw = rope_tables(pos, dim, heads, max_pos, theta, wide, torch.float32)
    cn, sn = rope_tables(pos, dim, heads, max_pos, theta, narrow, torch.float32)
    err_w = max((cw.double() - true_cos).abs().max(), (sw.double() - true_sin).abs().max())
    err_n = max((cn.double() - true_cos).abs().max(), (sn.double() - true_sin).abs().max())
    assert err_w < 1e-6, err_w
    assert err_n > 1e-2, err_n


@pytest.mark.parametrize("who", ["student", "teacher"])
def test_rope_tables_match_fixture(who):
    root = need(TINY_REF)
    cfg_json = json.loads((root / "config.json").read_text())
    io = load_file(str(root / "io.safetensors"))
    conv = Convention.student() if who == "student" else Convention(**cfg_json["teacher_overrides"])
    cfg = ModelConfig.from_metadata(cfg_json["ltx_core_config"])
    with torch.device("meta"):
        model = AVTransformer(cfg)
    rs = model.rope(io["bidir.video_positions"], io["bidir.audio_positions"], conv, torch.float32)
    got = {
        "video_cos": rs.video[0], "video_sin": rs.video[1], "audio_cos": rs.audio[0], "audio_sin": rs.audio[1],
        "video_cross_cos": rs.video_cross[0], "video_cross_sin": rs.video_cross[1],
        "audio_cross_cos": rs.audio_cross[0], "audio_cross_sin": rs.audio_cross[1],
    }  # fmt: skip
    for k, v in got.items():
        ref = io[f"bidir.{who}.pe.{k}"]
        assert v.shape == ref.shape, k
        assert torch.equal(v, ref), (k, (v - ref).abs().max())
