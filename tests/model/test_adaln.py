import math

import pytest
import torch
from tests.helpers.tiny_model import tiny_model

from omniforcing_rt.model.adaln import modulation_rows, timestep_features
from omniforcing_rt.model.config import Convention
from omniforcing_rt.model.positions import audio_positions, video_positions
from omniforcing_rt.model.transformer import Modality

J = 3  # channel that gets perturbed


def test_modulation_rows_row_k_goes_to_slice_k():
    k, d = 4, 5
    table = torch.arange(k * d, dtype=torch.float32).reshape(k, d) * 100
    mod = torch.randn(2, 3, k * d)
    rows = modulation_rows(table, mod)
    assert len(rows) == k
    for i in range(k):
        torch.testing.assert_close(rows[i], table[i] + mod[..., i * d:(i + 1) * d], atol=0, rtol=0)


def test_timestep_features_cos_first():
    t = torch.tensor([0.0, 3.0, 917.0])
    f = timestep_features(t)
    assert f.shape == (3, 256)
    assert torch.equal(f[0, :128], torch.ones(128)) and torch.equal(f[0, 128:], torch.zeros(128))
    freqs = torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float64) / 128)
    args = t.double()[:, None] * freqs[None]
    torch.testing.assert_close(f.double(), torch.cat([args.cos(), args.sin()], -1), atol=2e-4, rtol=0)


def _run(model, hooks):
    g = torch.Generator().manual_seed(5)
    h = w = 2
    vl = torch.randn(1, 2 * h * w, 8, generator=g)
    al = torch.randn(1, 9, 8, generator=g)
    video = Modality(vl, torch.full((1, 8), 0.4), video_positions(0, 2, h, w))
    audio = Modality(al, torch.full((1, 9), 0.4), audio_positions(0, 9))
    ctx = torch.randn(1, 3, 12, generator=g)
    text = model.encode_text(ctx, ctx)
    seen = {}
    handles = [
        mod.register_forward_pre_hook(lambda m, args, name=name: seen.__setitem__(name, args[0].detach().clone()))
        for name, mod in hooks.items()
    ]
    cap = {}
    with torch.no_grad():
        out = model(video, audio, text, Convention.student(), capture=cap)
    for hd in handles:
        hd.remove()
    return seen, out, cap


def _hook_points(blk):
    return {
        "attn1_q": blk.attn1.to_q, "ff_in": blk.ff.net[0].proj,
        "a_attn1_q": blk.audio_attn1.to_q, "a_ff_in": blk.audio_ff.net[0].proj,
        "a2v_q": blk.audio_to_video_attn.to_q, "a2v_kv": blk.audio_to_video_attn.to_k,
        "v2a_q": blk.video_to_audio_attn.to_q, "v2a_kv": blk.video_to_audio_attn.to_k,
    }


ATTN = {"attn1_q", "a_attn1_q"}
CROSS = {"a2v_q", "a2v_kv", "v2a_q", "v2a_kv"}
ALL = ATTN | CROSS | {"ff_in", "a_ff_in"}

# (table, row) -> (target hook point or None, "shift"/"scale", points that must stay bit-identical)
CASES = {
    ("scale_shift_table", 0): ("attn1_q", "shift", {"a_attn1_q"}),
    ("scale_shift_table", 1): ("attn1_q", "scale", {"a_attn1_q"}),
    ("scale_shift_table", 2): (None, None, ATTN),  # gate_msa: only after attn1
    ("scale_shift_table", 3): ("ff_in", "shift", ATTN | CROSS | {"a_ff_in"}),
    ("scale_shift_table", 4): ("ff_in", "scale", ATTN | CROSS | {"a_ff_in"}),
    ("scale_shift_table", 5): (None, None, ALL),
    ("audio_scale_shift_table", 0): ("a_attn1_q", "shift", {"attn1_q"}),
    ("audio_scale_shift_table", 1): ("a_attn1_q", "scale", {"attn1_q"}),
    ("audio_scale_shift_table", 2): (None, None, ATTN),
    ("audio_scale_shift_table", 3): ("a_ff_in", "shift", ATTN | CROSS | {"ff_in"}),
    ("audio_scale_shift_table", 4): ("a_ff_in", "scale", ATTN | CROSS | {"ff_in"}),
    ("audio_scale_shift_table", 5): (None, None, ALL),
    # cross tables are (scale, shift): rows 0/1 A->V, 2/3 V->A, 4 gate. All four cross inputs are
    # built from the same pre-cross normalisations, so a cross row touches exactly one of them.
    ("scale_shift_table_a2v_ca_video", 0): ("a2v_q", "scale", ATTN | CROSS - {"a2v_q"} | {"a_ff_in"}),
    ("scale_shift_table_a2v_ca_video", 1): ("a2v_q", "shift", ATTN | CROSS - {"a2v_q"} | {"a_ff_in"}),
    ("scale_shift_table_a2v_ca_video", 2): ("v2a_kv", "scale", ATTN | CROSS - {"v2a_kv"} | {"ff_in"}),
    ("scale_shift_table_a2v_ca_video", 3): ("v2a_kv", "shift", ATTN | CROSS - {"v2a_kv"} | {"ff_in"}),
    ("scale_shift_table_a2v_ca_video", 4): (None, None, ATTN | CROSS | {"a_ff_in"}),
    ("scale_shift_table_a2v_ca_audio", 0): ("a2v_kv", "scale", ATTN | CROSS - {"a2v_kv"} | {"a_ff_in"}),
    ("scale_shift_table_a2v_ca_audio", 1): ("a2v_kv", "shift", ATTN | CROSS - {"a2v_kv"} | {"a_ff_in"}),
    ("scale_shift_table_a2v_ca_audio", 2): ("v2a_q", "scale", ATTN | CROSS - {"v2a_q"} | {"ff_in"}),
    ("scale_shift_table_a2v_ca_audio", 3): ("v2a_q", "shift", ATTN | CROSS - {"v2a_q"} | {"ff_in"}),
    ("scale_shift_table_a2v_ca_audio", 4): (None, None, ATTN | CROSS | {"ff_in"}),
}


@pytest.mark.parametrize(("table", "row"), list(CASES))
def test_single_table_entry_reaches_only_its_slot(table, row):
    model = tiny_model(seed=2, num_layers=1)
    blk = model.transformer_blocks[0]
    points = _hook_points(blk)
    base, (bv, ba), _ = _run(model, points)
    with torch.no_grad():
        getattr(blk, table)[row, J] += 1.0
    new, (nv, na), _ = _run(model, points)
    target, kind, same = CASES[(table, row)]
    for name in same:
        assert torch.equal(new[name], base[name]), f"{table}[{row}] changed {name}"
    if target is not None:
        d = new[target] - base[target]
        others = torch.cat([d[..., :J], d[..., J + 1:]], -1)
        assert others.abs().max() == 0, f"{table}[{row}] leaked outside channel {J} of {target}"
        col = d[..., J]
        if kind == "shift":
            torch.testing.assert_close(col, torch.ones_like(col), atol=1e-5, rtol=0)
        else:  # scale: the change is rms(x)_J, which varies per token
            assert (col - 1).abs().max() > 1e-2 and col.std() > 1e-3
    assert not (torch.equal(bv, nv) and torch.equal(ba, na)), "perturbation had no effect on the outputs"


def test_scale_row_multiplies_the_rms_normalised_input():
    model = tiny_model(seed=2, num_layers=1)
    blk = model.transformer_blocks[0]
    pts = {"attn1_q": blk.attn1.to_q}
    base, _, cap = _run(model, pts)
    with torch.no_grad():
        blk.scale_shift_table[1, J] += 1.0
    new, _, _ = _run(model, pts)
    x = cap["hidden.video_in"]
    rms = x / (x.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt()
    torch.testing.assert_close(new["attn1_q"][..., J] - base["attn1_q"][..., J], rms[..., J], atol=1e-5, rtol=0)
