"""World media models: encoder/decoder geometry, training, resume, export through the media loaders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from omniforcing_rt.errors import ConfigError
from omniforcing_rt.media.decode_worker import load_media_decoders
from omniforcing_rt.models import DEFAULT_MODEL_DIR, load_model
from omniforcing_rt.world_models.export import export_media, load_world_encoders
from omniforcing_rt.world_models.media_config import MediaSizes, build_audio_pair, build_video_pair, build_vocoder
from omniforcing_rt.world_models.mel import log_mel
from omniforcing_rt.world_models.train_media import MediaTrainConfig, MediaTrainer, default_train_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sizes() -> MediaSizes:
    return MediaSizes()


def test_video_encoder_feeds_decoder(sizes: MediaSizes) -> None:
    enc, dec = build_video_pair(sizes, 0)
    with torch.no_grad():
        z = enc(torch.zeros(1, 3, 9, 128, 192))
        assert z.shape == (1, 128, 2, 4, 6)
        assert dec(z).shape == (1, 3, 9, 128, 192)
        assert enc(torch.zeros(1, 3, 49, 128, 192)).shape == (1, 128, 7, 4, 6)


def test_audio_encoder_feeds_decoder_and_is_causal(sizes: MediaSizes) -> None:
    enc, dec = build_audio_pair(sizes, 0)
    wave = torch.randn(2, 240 * 201) * 0.1
    mel = log_mel(wave)[None]
    assert mel.shape == (1, 2, 201, 64)
    with torch.no_grad():
        z = enc(mel)
        assert z.shape == (1, 8, 51, 16)
        assert dec(z).shape == mel.shape
        changed = mel.clone()
        changed[:, :, 4 * 10 + 1 :] += 1.0  # frames after latent 10's last frame (4k)
        z2 = enc(changed)
    assert torch.equal(z[:, :, :11], z2[:, :, :11])
    assert not torch.equal(z[:, :, 11], z2[:, :, 11])


def test_vocoder_geometry(sizes: MediaSizes) -> None:
    voc = build_vocoder(sizes, 0)
    with torch.no_grad():
        assert voc(torch.zeros(1, 2, 10, 64)).shape == (1, 2, 2400)


def test_config_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as err:
        MediaTrainConfig(part="nope", steps=0, lr=-1.0)
    assert len(err.value.problems) == 3


@pytest.mark.parametrize("part,window", [("audio", 9), ("vocoder", 8)])
def test_training_lowers_the_loss(part: str, window: int) -> None:
    trainer = MediaTrainer(default_train_config(part, steps=8, window=window, batch=1, warmup=1, lr=2e-3))
    with torch.no_grad():
        before = float(trainer.loss(0)[0])
    for _ in range(8):
        trainer.step = 0  # fit one batch: the loss on it must fall
        trainer.train_step()
    with torch.no_grad():
        after = float(trainer.loss(0)[0])
    assert after < 0.9 * before


def test_resume_gives_the_same_next_step(tmp_path: Path) -> None:
    cfg = default_train_config("vocoder", steps=5, window=8, batch=1, warmup=1)
    first = MediaTrainer(cfg)
    first.train_step()
    first.train_step()
    first.save(tmp_path / "checkpoint.pt")
    expected = first.train_step()
    resumed = MediaTrainer(cfg)
    resumed.load(tmp_path / "checkpoint.pt")
    got = resumed.train_step()
    assert got["loss"] == expected["loss"] and got["step"] == 3


def test_run_resumes_and_writes_metrics(tmp_path: Path) -> None:
    cfg = default_train_config("vocoder", steps=3, window=8, batch=1, warmup=1, log_every=1)
    MediaTrainer(cfg).run(tmp_path, max_seconds=0.0, progress=False)  # stops before any step
    summary = MediaTrainer(cfg).run(tmp_path, progress=False)
    assert summary["step"] == 3
    rows = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert (tmp_path / "loss.png").stat().st_size > 0


def test_export_loads_through_the_media_loaders(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for part, window in (("video", 9), ("audio", 9), ("vocoder", 8)):
        MediaTrainer(default_train_config(part, steps=1, window=window)).run(runs / part, progress=False)
    out = tmp_path / "model"
    export_media(runs, out, storage="fp16", stats_clips=1)
    media = load_media_decoders(out / "media.safetensors")
    media.check_compatible(128, 128)
    video_enc, audio_enc = load_world_encoders(out / "media.safetensors")
    with torch.no_grad():
        assert media.video(video_enc(torch.zeros(1, 3, 9, 128, 192))).shape == (1, 3, 9, 128, 192)
        assert media.audio(audio_enc(torch.zeros(1, 2, 5, 64))).shape == (1, 2, 5, 64)
    # As a normal model directory: model.json naming a transformer and this media file.
    info = {"transformer": str(DEFAULT_MODEL_DIR / "transformer.safetensors"), "latent_grid_hw": [4, 6],
            "text_tokens": 16, "media": "media.safetensors"}  # fmt: skip
    (out / "model.json").write_text(json.dumps(info))
    assert load_model(out, media=True).media is not None
