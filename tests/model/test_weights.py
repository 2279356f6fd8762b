import json
import logging

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tests.helpers.tiny_model import TINY_REF, need

from omniforcing_rt.errors import CheckpointError
from omniforcing_rt.model.config import Convention
from omniforcing_rt.model.transformer import Modality
from omniforcing_rt.model.weights import LTX_PREFIX, load_transformer

P = LTX_PREFIX


@pytest.fixture(scope="module")
def base():
    root = need(TINY_REF)
    path = root / "weights.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    return path, load_file(str(path)), meta


def _save(tensors, path, meta):
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    return path


def _sd(model):
    return {k: v for k, v in model.state_dict().items()}


def test_load_fixture(base):
    path, tensors, _ = base
    model, conv, report = load_transformer(path)
    assert conv == Convention.student()
    sd = _sd(model)
    assert len(sd) == len(tensors)
    for k, v in tensors.items():
        assert torch.equal(sd[k[len(P):]], v), k
    assert report.files == [str(path)]
    assert not model.training


def test_sharded_with_index_and_directory(base, tmp_path):
    path, tensors, meta = base
    keys = sorted(tensors)
    half = len(keys) // 2
    shards = {"m-00001-of-00002.safetensors": keys[:half], "m-00002-of-00002.safetensors": keys[half:]}
    d = tmp_path / "sharded"
    d.mkdir()
    for name, ks in shards.items():
        _save({k: tensors[k] for k in ks}, d / name, meta)
    index = d / "m.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": {k: n for n, ks in shards.items() for k in ks}}))
    ref = _sd(load_transformer(path)[0])
    for target in (index, d):
        sd = _sd(load_transformer(target)[0])
        assert all(torch.equal(sd[k], ref[k]) for k in ref)
    # directory without index
    d2 = tmp_path / "dir"
    d2.mkdir()
    for name, ks in shards.items():
        _save({k: tensors[k] for k in ks}, d2 / name, meta)
    sd = _sd(load_transformer(d2)[0])
    assert all(torch.equal(sd[k], ref[k]) for k in ref)


@pytest.mark.parametrize("prefix,layout", [("model.velocity_model.", "bidirectional-wrapper"), ("model.", "causal-wrapper"), ("", "bare"), (P, "ltx2")])
def test_generator_layouts_applied_on_top(base, tmp_path, prefix, layout):
    path, tensors, _ = base
    names = ["proj_out.weight", "transformer_blocks.1.attn1.to_q.weight"]
    new = {n: torch.full_like(tensors[P + n], 0.25) for n in names}
    gen = _save({prefix + n: v for n, v in new.items()}, tmp_path / "gen.safetensors", None)
    model, _, report = load_transformer(path, generator=gen)
    sd = _sd(model)
    for n, v in new.items():
        assert torch.equal(sd[n], v)
    assert torch.equal(sd["patchify_proj.weight"], tensors[P + "patchify_proj.weight"])  # untouched
    assert report.generator_layout == layout
    assert report.generator_keys == 2


def test_training_pt_use_ema(base, tmp_path):
    path, tensors, _ = base
    shape = tensors[P + "proj_out.weight"].shape
    ckpt = {
        "generator": {"proj_out.weight": torch.full(shape, 1.0)},
        "generator_ema": {"proj_out.weight": torch.full(shape, 2.0)},
        "critic": {"proj_out.weight": torch.full(shape, 3.0)},
    }
    pt = tmp_path / "train.pt"
    torch.save(ckpt, pt)
    assert torch.equal(_sd(load_transformer(path, generator=pt)[0])["proj_out.weight"], ckpt["generator"]["proj_out.weight"])
    ema = _sd(load_transformer(path, generator=pt, use_ema=True)[0])["proj_out.weight"]
    assert torch.equal(ema, ckpt["generator_ema"]["proj_out.weight"])


def test_missing_key_named(base, tmp_path):
    path, tensors, meta = base
    victim = P + "transformer_blocks.0.ff.net.2.bias"
    t = {k: v for k, v in tensors.items() if k != victim}
    with pytest.raises(CheckpointError, match="transformer_blocks.0.ff.net.2.bias"):
        load_transformer(_save(t, tmp_path / "m.safetensors", meta))


def test_unexpected_key(base, tmp_path):
    path, tensors, meta = base
    t = {**tensors, P + "transformer_blocks.0.bogus.weight": torch.zeros(3)}
    with pytest.raises(CheckpointError, match="bogus"):
        load_transformer(_save(t, tmp_path / "m.safetensors", meta))


def test_shape_mismatch_vs_header(base, tmp_path):
    path, tensors, meta = base
    k = P + "proj_out.weight"
    t = {**tensors, k: tensors[k][:, :-1]}
    with pytest.raises(CheckpointError, match="proj_out.weight"):
        load_transformer(_save(t, tmp_path / "m.safetensors", meta))


def test_mixed_generator_layouts(base, tmp_path):
    path, tensors, _ = base
    g = {"model.proj_out.weight": tensors[P + "proj_out.weight"], "proj_out.bias": tensors[P + "proj_out.bias"]}
    with pytest.raises(CheckpointError, match="mix"):
        load_transformer(path, generator=_save(g, tmp_path / "g.safetensors", None))


def test_audio_sink_tokens_dropped_or_loaded(base, tmp_path, caplog):
    path, tensors, meta = base
    cfg = json.loads(meta["config"])
    audio_dim = tensors[P + "audio_patchify_proj.weight"].shape[0]
    sinks = torch.randn(1, 4, audio_dim)
    t = {**tensors, "audio_sink_tokens": sinks}
    with caplog.at_level(logging.WARNING):
        model, _, report = load_transformer(_save(t, tmp_path / "a.safetensors", meta))
    assert not hasattr(model, "audio_sink_tokens")
    assert any("audio_sink_tokens" in n for n in report.notices)
    cfg["transformer"]["audio_sink_tokens"] = 4
    model, _, report = load_transformer(_save(t, tmp_path / "b.safetensors", {"config": json.dumps(cfg)}))
    assert model.config.audio_sink_tokens == 4
    assert torch.equal(model.audio_sink_tokens.data, sinks)
    assert report.notices == []
    # configured for sinks but the file has none -> missing key
    t2 = dict(tensors)
    with pytest.raises(CheckpointError, match="audio_sink_tokens"):
        load_transformer(_save(t2, tmp_path / "c.safetensors", {"config": json.dumps(cfg)}))


def test_fp8_weights_stay_fp8_and_match_fp32(base, tmp_path):
    path, tensors, meta = base
    io = load_file(str(TINY_REF / "io.safetensors"))
    fp8 = {}
    for k, v in tensors.items():
        is_lin = any(s in k for s in (".to_q.weight", ".to_k.weight", ".to_v.weight", ".to_out.0.weight", "ff.net."))
        fp8[k] = v.to(torch.float8_e4m3fn) if is_lin and k.endswith("weight") else v
    n8 = sum(v.dtype == torch.float8_e4m3fn for v in fp8.values())
    assert n8 > 0
    m8, _, report = load_transformer(_save(fp8, tmp_path / "fp8.safetensors", meta))
    m32, _, _ = load_transformer(path)
    assert report.fp8_tensors == n8
    assert m8.transformer_blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
    assert m8.transformer_blocks[1].audio_ff.net[0].proj.weight.dtype == torch.float8_e4m3fn
    assert m8.patchify_proj.weight.dtype == torch.float32
    outs = []
    for m in (m8, m32):
        text = m.encode_text(io["context.video"], io["context.audio"], io["context.attention_mask"])
        video = Modality(io["bidir.video_tokens"], io["bidir.video_timesteps"][..., 0], io["bidir.video_positions"])
        audio = Modality(io["bidir.audio_tokens"], io["bidir.audio_timesteps"][..., 0], io["bidir.audio_positions"])
        with torch.no_grad():
            outs.append(m(video, audio, text, Convention.student()))
    for a, b in zip(*outs):
        rel = ((a - b).norm() / b.norm()).item()
        assert 0 < rel < 0.1, rel


def test_corrupt_file(base, tmp_path):
    path, _, _ = base
    data = path.read_bytes()
    for n in (len(data) // 2, 20, 4):
        bad = tmp_path / f"bad{n}.safetensors"
        bad.write_bytes(data[:n])
        with pytest.raises(CheckpointError):
            load_transformer(bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(CheckpointError):
        load_transformer(path, generator=junk)
    with pytest.raises(CheckpointError):
        load_transformer(tmp_path / "nope.safetensors")


def test_mixed_ltx2_and_bare_generator_keys(base, tmp_path):
    path, tensors, _ = base
    g = {P + "proj_out.weight": torch.zeros_like(tensors[P + "proj_out.weight"]),
         "proj_out.bias": torch.ones_like(tensors[P + "proj_out.bias"])}
    with pytest.raises(CheckpointError, match="mix"):
        load_transformer(path, generator=_save(g, tmp_path / "g.safetensors", None))
