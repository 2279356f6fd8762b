"""Training stages on CPU: ODE regression learns, DMD runs, accumulation, resume, atomic checkpoints, export."""

import json

import pytest
import torch

from omniforcing_rt.distill import checkpoint as ckpt_mod
from omniforcing_rt.distill import run_stage
from omniforcing_rt.distill.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from omniforcing_rt.distill.metrics import read_metrics
from omniforcing_rt.engine import Engine, EngineConfig
from omniforcing_rt.errors import ConfigError
from omniforcing_rt.model.weights import load_transformer
from omniforcing_rt.models import load_model
from omniforcing_rt.pipeline.prompt import hashed_prompt_features
from omniforcing_rt.pipeline.stream import StreamingGenerator

from ._helpers import tiny_config


def _ode(assets, **over):
    return tiny_config("ode", teacher=str(assets.teacher), ode_pairs=str(assets.pairs), **over)


def _losses(out):
    return [r["loss"] for r in read_metrics(out / "metrics.jsonl")]


def test_ode_regression_lowers_the_loss_and_the_student_streams(assets, tmp_path):
    out = tmp_path / "ode"
    res = run_stage(_ode(assets, train={"steps": 30, "checkpoint_every": 30}), out, progress=False)
    losses = _losses(out)
    assert len(losses) == 30 and all(torch.isfinite(torch.tensor(losses)))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.6 * first, (first, last)
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    # the exported generator is a model directory the pipeline streams from
    loaded = load_model(res.exports[0])
    feats = hashed_prompt_features("a test", loaded.text_tokens, loaded.model.config.caption_channels)
    text = loaded.model.encode_text(feats.video, feats.audio, feats.mask)
    blocks = list(StreamingGenerator(loaded.model, loaded.stream).stream(text, 0, 2))
    assert [b.video_latents.shape[0] for b in blocks] == [4, 3] and all(
        torch.isfinite(b.video_latents).all() for b in blocks
    )
    # the training .pt loads through the release loader (model.X layout)
    _, _, report = load_transformer(assets.teacher / "transformer.safetensors", generator=res.checkpoint)
    assert report.generator_layout == "causal-wrapper" and report.generator_keys > 100
    _streams_through_the_engine(loaded, text, blocks, tmp_path)


def _streams_through_the_engine(loaded, text, blocks, tmp_path) -> None:
    """The exported student, compiled by the C++ engine, yields the pipeline's blocks (fp32, 1e-4)."""
    engine = Engine.from_pretrained(loaded, EngineConfig(cache_dir=str(tmp_path / "engines"), page_size_tokens=8))
    try:
        with engine.stream(text, seed=0, seconds=engine.layout_for_blocks(2).duration_s) as stream:
            chunks = list(stream)
    finally:
        engine.close()
    assert [c.index for c in chunks] == [b.index for b in blocks]
    for c, b in zip(chunks, blocks):
        assert (c.video_latents - b.video_latents).abs().max().item() <= 1e-4
        assert (c.audio_latents - b.audio_latents).abs().max().item() <= 1e-4


def test_gradient_accumulation_equals_a_bigger_batch(assets, tmp_path):
    common = {"steps": 1, "seed": 3}
    run_stage(_ode(assets, optim={"lr": 1e-4}, train={**common, "batch_size": 2}), tmp_path / "b2", progress=False)
    run_stage(_ode(assets, optim={"lr": 1e-4}, train={**common, "batch_size": 1, "grad_accum": 2}),
              tmp_path / "acc", progress=False)  # fmt: skip
    a = load_checkpoint(tmp_path / "b2" / "checkpoints" / "step_00000001.pt")
    b = load_checkpoint(tmp_path / "acc" / "checkpoints" / "step_00000001.pt")
    assert _losses(tmp_path / "b2")[0] == pytest.approx(_losses(tmp_path / "acc")[0], rel=1e-6)
    for k in a["generator"]:
        assert torch.allclose(a["generator"][k], b["generator"][k], atol=1e-6), k


def test_resume_continues_the_identical_trajectory(assets, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train = {"steps": 4, "checkpoint_every": 2, "ema_decay": 0.9, "ema_start": 1}
    over = {"train": train, "student": {"audio_sigma_mapping": "release_compat"}}
    run_stage(_ode(assets, **over), straight, progress=False)
    run_stage(_ode(assets, **{**over, "train": {**train, "steps": 2}}), split, progress=False)
    res = run_stage(_ode(assets, **over), split, progress=False)
    assert res.first_step == 2
    assert _losses(straight) == _losses(split)
    a, b = (load_checkpoint(d / "checkpoints" / "step_00000004.pt") for d in (straight, split))
    assert all(torch.equal(a["generator"][k], b["generator"][k]) for k in a["generator"])
    assert all(torch.equal(a["generator_ema"][k], b["generator_ema"][k]) for k in a["generator_ema"])


def test_a_crash_while_saving_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    ckdir = tmp_path / "ck"
    good = {"generator": {"model.w": torch.ones(3)}, "config": "{}"}
    save_checkpoint(ckdir, 1, good, keep=2)

    def torn_save(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(ckdir, 2, good, keep=2)
    monkeypatch.undo()
    path, obj = latest_checkpoint(ckdir)
    assert path.name == "step_00000001.pt" and torch.equal(obj["generator"]["model.w"], torch.ones(3))
    assert not (ckdir / "step_00000002.pt").exists()
    (ckdir / "step_00000003.pt").write_bytes(b"garbage")  # a foreign corrupt file is skipped too
    assert latest_checkpoint(ckdir)[0].name == "step_00000001.pt"
    save_checkpoint(ckdir, 4, good, keep=2)
    assert not list(ckdir.glob("*.tmp")) and latest_checkpoint(ckdir)[0].name == "step_00000004.pt"


@pytest.mark.parametrize("stage", ["dmd", "bidir-dmd"])
def test_dmd_stages_run_without_nan(assets, tmp_path, stage):
    out = tmp_path / stage
    train = {"steps": 3, "batch_size": 2, "ema_start": 1, "ema_decay": 0.9}
    res = run_stage(tiny_config(stage, teacher=str(assets.teacher), train=train), out, progress=False)
    recs = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in recs] == [1, 2, 3]
    gen_steps = [r["step"] for r in recs if "generator_loss" in r]
    assert gen_steps == [1, 3]  # tiny preset: generator every 2nd step, critic every step
    for r in recs:
        assert all(v is not None and v == v for v in r.values()), r  # no NaN (NaN is logged as null)
    obj = load_checkpoint(res.checkpoint)
    teacher = load_transformer(assets.teacher / "transformer.safetensors")[0].state_dict()
    for name in ("generator", "critic"):
        moved = max((obj[name][f"model.{k}"] - v).abs().max().item() for k, v in teacher.items())
        assert moved > 0, name
    assert len(res.exports) == 2 and (res.exports[1] / "model.json").exists()
    assert json.loads((res.exports[1] / "model.json").read_text())["description"].startswith("distilled generator (EMA")


def test_stabilisers_sinks_and_global_prefix(assets, tmp_path):
    out = tmp_path / "sinks"
    over = {"student": {"layout": "paper", "audio_sink_tokens": 4}, "train": {"steps": 2}}
    res = run_stage(_ode(assets, **over), out, progress=False)
    loaded = load_model(res.exports[0])
    assert loaded.model.config.audio_sink_tokens == 4 and loaded.stream.layout_kind.value == "paper"
    feats = hashed_prompt_features("x", loaded.text_tokens, loaded.model.config.caption_channels)
    text = loaded.model.encode_text(feats.video, feats.audio, feats.mask)
    blocks = list(StreamingGenerator(loaded.model, loaded.stream).stream(text, 0, 3))
    assert [b.audio_latents.shape[0] for b in blocks] == [1, 25, 25]
    # Stage 3 from the Stage-2 checkpoint keeps the trained sinks
    dmd = tiny_config("dmd", teacher=str(assets.teacher), student={**over["student"], "init": str(res.checkpoint)},
                      train={"steps": 1})  # fmt: skip
    r2 = run_stage(dmd, tmp_path / "sinks_dmd", progress=False)
    a = load_checkpoint(res.checkpoint)["generator"]["model.audio_sink_tokens"]
    b = load_checkpoint(r2.checkpoint)["generator"]["model.audio_sink_tokens"]
    assert (a - b).abs().max() < 1e-2 and torch.isfinite(b).all()


def test_bf16_compute_trains_with_fp32_master_weights(assets, tmp_path):
    """bf16 autocast (the GPU setting) on CPU: losses finite and falling, weights stay fp32."""
    out = tmp_path / "ode_bf16"
    res = run_stage(_ode(assets, train={"steps": 20, "checkpoint_every": 20, "dtype": "bfloat16"}), out, progress=False)
    losses = _losses(out)
    assert all(torch.isfinite(torch.tensor(losses))) and sum(losses[-4:]) < 0.8 * sum(losses[:4]), losses
    gen = load_checkpoint(res.checkpoint)["generator"]
    assert {t.dtype for t in gen.values() if t.is_floating_point()} == {torch.float32}
    dmd = tiny_config("dmd", teacher=str(assets.teacher), train={"steps": 2, "batch_size": 2, "dtype": "bfloat16"})
    r2 = run_stage(dmd, tmp_path / "dmd_bf16", progress=False)
    assert all(torch.isfinite(torch.tensor(_losses(tmp_path / "dmd_bf16")))) and r2.checkpoint.exists()


def test_dmd_with_loss_on_the_last_block_only(assets, tmp_path):
    """Paper v1 Stage III setting (``dmd.loss_blocks = 'last'``): runs, finite, generator moves."""
    out = tmp_path / "dmd_last"
    cfg = tiny_config("dmd", teacher=str(assets.teacher), train={"steps": 1, "batch_size": 1},
                      dmd={"loss_blocks": "last"})  # fmt: skip
    res = run_stage(cfg, out, progress=False)
    rec = read_metrics(out / "metrics.jsonl")[0]
    assert all(v is not None and v == v for v in rec.values()) and "generator_loss" in rec, rec
    gen = load_checkpoint(res.checkpoint)["generator"]
    teacher = load_transformer(assets.teacher / "transformer.safetensors")[0].state_dict()
    assert max((gen[f"model.{k}"] - v).abs().max().item() for k, v in teacher.items()) > 0
    with pytest.raises(ConfigError, match="loss_blocks must be"):
        tiny_config("dmd", teacher=str(assets.teacher), dmd={"loss_blocks": "first"})


def test_ema_shadow_lives_on_the_host_in_fp32():
    """The EMA shadow is an fp32 host copy (spec D) and follows d * shadow + (1 - d) * param."""
    from omniforcing_rt.distill.trainer import Ema

    net = torch.nn.Linear(3, 2).to(torch.bfloat16)
    ema = Ema(0.5, start=1)
    ema.update(net, 0)
    assert ema.shadow is None  # not started
    ema.update(net, 1)
    first = {k: v.clone() for k, v in ema.shadow.items()}
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net, 2)
    assert all(v.device.type == "cpu" and v.dtype == torch.float32 for v in ema.shadow.values())
    assert torch.equal(ema.shadow["weight"], 0.5 * first["weight"] + 0.5 * net.weight.float())
    full = ema.full_state()
    assert torch.equal(full["bias"], first["bias"])
    other = Ema(0.5, start=1)
    other.load_full(net, full)
    assert torch.equal(other.shadow["weight"], ema.shadow["weight"])
