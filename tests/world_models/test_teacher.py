"""World teacher (phase 2b): config validation, caption features, flow-matching training, resume, export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from omniforcing_rt.distill.checkpoint import latest_checkpoint, save_checkpoint
from omniforcing_rt.distill.networks import load_teacher
from omniforcing_rt.errors import ConfigError
from omniforcing_rt.model.config import Convention
from omniforcing_rt.models import load_model
from omniforcing_rt.world_models.caption_features import CaptionFeaturizer, tokenize, write_prompt_features
from omniforcing_rt.world_models.flow_matching import clip_velocity, euler_sample
from omniforcing_rt.world_models.teacher_config import TeacherConfig
from omniforcing_rt.world_models.teacher_latents import LatentSet
from omniforcing_rt.world_models.train_teacher import TeacherTrainer, prepare_latents

torch.set_num_threads(1)

CAPTION = "two balls, a red one and a blue one, bounce quickly in a box; the red ball rings a low note and the blue ball rings a high note."


def _config(**kw: object) -> TeacherConfig:
    base = {"latent_source": "standin", "train_clips": 4, "steps": 30, "batch_size": 4, "lr": 1e-3,
            "warmup_steps": 3, "checkpoint_every": 1000, "text_tokens": 48}  # fmt: skip
    return TeacherConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def latents(tmp_path_factory: pytest.TempPathFactory) -> LatentSet:
    return prepare_latents(_config(), tmp_path_factory.mktemp("latents"), progress=False)


def test_config_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as e:
        TeacherConfig(num_layers=0, lr=-1.0, sigma_sampler="cubic", latent_source="world", media=None,
                      video_latents=5, caption_dropout=2.0, ema_decay=1.0, grad_clip=-1.0)  # fmt: skip
    text = "\n".join(e.value.problems)
    for word in ("num_layers", "lr", "sigma_sampler", "needs media", "video_latents", "caption_dropout",
                 "ema_decay", "grad_clip"):  # fmt: skip
        assert word in text
    assert len(e.value.problems) == 8
    with pytest.raises(ConfigError, match="unknown key"):
        TeacherConfig.from_dict({**_config().to_dict(), "nope": 1})
    assert TeacherConfig.from_dict(_config().to_dict()) == _config()


def test_caption_features_keep_words_apart() -> None:
    fz = CaptionFeaturizer(tokens=48, channels=64, seed=0)
    a = fz.encode(CAPTION)
    b = fz.encode(CAPTION.replace("red", "green"))
    assert torch.equal(a.video, fz.encode(CAPTION).video)  # deterministic
    n = len(tokenize(CAPTION))
    assert int(a.mask.sum()) == n and a.mask[0, -n:].all() and not a.mask[0, :-n].any()  # left padded
    diff = (a.video - b.video).abs().sum(-1)[0]
    changed = diff > 1e-4
    assert int(changed.sum()) == 2  # exactly the two "red" tokens differ
    assert float(torch.nn.functional.cosine_similarity(fz.word_vector("red"), fz.word_vector("green"), 0)) < 0.5
    empty = fz.encode("")
    assert int(empty.mask.sum()) == 1 and torch.isfinite(empty.video).all()
    assert not torch.equal(fz.encode("a blue ball").video, fz.encode("a ball blue").video)  # order matters


def test_flow_matching_loss_drops(latents: LatentSet) -> None:
    tr = TeacherTrainer(_config(), latents)
    losses = [tr.train_step()["loss"] for _ in range(30)]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert all(torch.isfinite(torch.tensor(losses)))
    assert last < 0.8 * first, (first, last)  # measured: 6.69 -> 4.41 (ratio 0.66)


def test_resume_reproduces_next_loss(latents: LatentSet, tmp_path: Path) -> None:
    cfg = _config(ema_decay=0.9)
    a = TeacherTrainer(cfg, latents)
    for _ in range(3):
        a.train_step()
    save_checkpoint(tmp_path / "checkpoints", a.step, a.state(), keep=2)
    expected = a.train_step()
    b = TeacherTrainer(cfg, latents)
    found = latest_checkpoint(tmp_path / "checkpoints")
    assert found is not None
    b.load_state(found[1])
    got = b.train_step()
    assert got["step"] == expected["step"] == 4
    assert got["loss"] == expected["loss"]
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def test_run_exports_loadable_teacher(latents: LatentSet, tmp_path: Path) -> None:
    cfg = _config(steps=3)
    run = tmp_path / "run"
    (run / "latents.safetensors").parent.mkdir(parents=True)
    summary = TeacherTrainer(cfg, latents).run(run, progress=False)
    assert summary["steps_done"] == 3 and (run / "metrics.jsonl").exists() and (run / "loss.png").exists()
    again = TeacherTrainer(cfg, latents).run(run, progress=False)  # resumes: nothing left to do
    assert again["steps_done"] == 3
    loaded = load_model(run / "model")
    assert loaded.stream.convention == Convention.teacher() and loaded.text_tokens == 48
    assert loaded.stream.latent_grid_hw == (4, 6)
    model = loaded.model
    fz = CaptionFeaturizer(48, model.config.caption_channels, 0)
    f = fz.encode(CAPTION)
    text = model.encode_text(f.video, f.audio, f.mask)
    v, a = latents.video[:1], latents.audio[:1]
    with torch.no_grad():
        vv, av = clip_velocity(
            model, Convention.teacher(), text, v, a, torch.full((1, 7), 0.5), torch.full((1, 51), 0.5)
        )
    assert vv.shape == v.shape and av.shape == a.shape and torch.isfinite(vv).all() and torch.isfinite(av).all()
    teacher = load_teacher(run / "model", torch.device("cpu"))  # the distillation trainer's loader
    u = fz.encode("")
    xv, xa = euler_sample(teacher, Convention.teacher(), text, teacher.encode_text(u.video, u.audio, u.mask),
                          (torch.randn_like(v), torch.randn_like(a)), steps=4)  # fmt: skip
    assert torch.isfinite(xv).all() and torch.isfinite(xa).all()
    _ode_pairs_accept_teacher(run / "model", fz, tmp_path)


def _ode_pairs_accept_teacher(model_dir: Path, fz: CaptionFeaturizer, tmp_path: Path) -> None:
    """The distillation stage 'ode-pairs' samples the exported teacher with the featurizer's prompt file."""
    from omniforcing_rt.distill.config import DistillConfig, GuiderConfig, OdePairsConfig
    from omniforcing_rt.distill.data import OdePairs
    from omniforcing_rt.distill.distributed import DistContext
    from omniforcing_rt.distill.ode_pairs import generate_ode_pairs

    write_prompt_features(tmp_path / "pf.safetensors", fz, [CAPTION], "")
    pairs = OdePairsConfig(num_pairs=1, shard_size=1, batch_size=1, guider=GuiderConfig(stg_blocks=(1,)))
    cfg = DistillConfig(stage="ode-pairs", teacher=str(model_dir), prompts=(CAPTION,), text_tokens=48,
                        prompt_features=str(tmp_path / "pf.safetensors"), latent_grid_hw=(4, 6), video_latents=7,
                        pairs=pairs)  # fmt: skip
    out = generate_ode_pairs(cfg, tmp_path / "pairs", model_dir, DistContext(0, 1, torch.device("cpu")), progress=False)
    data = OdePairs(out)
    assert len(data) == 1


def test_world_encoder_source_and_decode_geometry() -> None:
    """The trained-encoder path: untrained world encoders / decoders give the layout's shapes end to end."""
    from omniforcing_rt.media.decode_worker import MediaDecoders
    from omniforcing_rt.world.dataset import clip_seed, make_clip
    from omniforcing_rt.world.scene import WorldConfig
    from omniforcing_rt.world_models.media_config import MediaSizes, build_audio_pair, build_video_pair, build_vocoder
    from omniforcing_rt.world_models.teacher_latents import WorldEncoderSource
    from omniforcing_rt.world_models.teacher_sampling import decode_latents

    sizes = MediaSizes()
    (venc, vdec), (aenc, adec) = build_video_pair(sizes, 0), build_audio_pair(sizes, 0)
    source = WorldEncoderSource.__new__(WorldEncoderSource)  # skip the file: set the encoders directly
    source.video, source.audio = venc.eval(), aenc.eval()
    clip = make_clip(WorldConfig(), clip_seed("train", 0))
    zv, za = source.encode(clip.frames, clip.audio)
    assert zv.shape == (7, 128, 4, 6) and za.shape == (51, 128)
    media = MediaDecoders(video=vdec.eval(), audio=adec.eval(), vocoder=build_vocoder(sizes, 0).eval())
    frames, wave = decode_latents(media, zv, za)
    assert frames.shape == clip.frames.shape and frames.dtype == clip.frames.dtype
    assert wave.shape == clip.audio.shape
