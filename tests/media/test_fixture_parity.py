"""Every media component against the reference fixture (official ltx-core, fp32): max |diff| <= 1e-4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from omniforcing_rt.checks.media_fixture import check_media_fixture, check_media_fixture_rows, is_media_fixture
from omniforcing_rt.media import weights as mw
from omniforcing_rt.media.audio_vae import audio_latent_to_tokens, audio_tokens_to_latent
from omniforcing_rt.media.feature_extractor import normalize_and_concat_hidden_states
from omniforcing_rt.media.text_connector import TextConnectorConfig, encode_text_contexts
from omniforcing_rt.media.video_tiling import TilingConfig, plan_tiles, tiled_decode

from .helpers import TOL


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a.double() - b.double()).abs().max())


@torch.no_grad()
def test_video_decoder(fixture_weights: Path, fixture_io: dict[str, torch.Tensor]) -> None:
    dec = mw.load_video_decoder(fixture_weights)
    lat = fixture_io["video.latent"]
    assert _maxdiff(dec.per_channel_statistics.un_normalize(lat), fixture_io["video.latent_unnormalized"]) <= TOL
    assert _maxdiff(dec(lat), fixture_io["video.decoded"]) <= TOL
    assert _maxdiff(dec(lat[:, :, :1]), fixture_io["video.decoded_first_latent_only"]) <= TOL


@torch.no_grad()
def test_video_tiled_decode(fixture_dir: Path, fixture_weights: Path, fixture_io: dict[str, torch.Tensor]) -> None:
    cfg = json.loads((fixture_dir / "config.json").read_text())["tiling"]
    dec = mw.load_video_decoder(fixture_weights)
    tiling = TilingConfig.from_dict(cfg["config"])
    chunks = list(tiled_decode(dec, fixture_io["video.latent"], tiling))
    assert [c.shape[2] for c in chunks] == fixture_io["video.tiled_chunk_lengths"].tolist()
    assert _maxdiff(torch.cat(chunks, 2), fixture_io["video.tiled_decoded"]) <= TOL
    # The documented tile plan: latent ranges, output frames and blend masks.
    shape = tuple(fixture_io["video.latent"].shape[2:])
    tiles = plan_tiles(shape, tiling, dec.config.temporal_factor, dec.config.spatial_factor)
    for tile, ref in zip(tiles, cfg["latent_tiles"], strict=True):
        assert [tile.latent_slices[0].start, tile.latent_slices[0].stop] == ref["latent_frames"]
        assert [tile.output_slices[0].start, tile.output_slices[0].stop] == ref["output_frames"]
        torch.testing.assert_close(tile.mask.flatten(), torch.tensor(ref["temporal_blend_mask"]), atol=1e-6, rtol=0)


@torch.no_grad()
def test_audio_decoder(fixture_weights: Path, fixture_io: dict[str, torch.Tensor]) -> None:
    dec = mw.load_audio_decoder(fixture_weights)
    lat = fixture_io["audio.latent"]
    assert torch.equal(audio_latent_to_tokens(lat), fixture_io["audio.latent_tokens"])
    assert torch.equal(audio_tokens_to_latent(fixture_io["audio.latent_tokens"], lat.shape[1]), lat)
    assert _maxdiff(dec(lat), fixture_io["audio.mel"]) <= TOL
    n = (fixture_io["audio.mel_prefix"].shape[2] + 3) // 4
    assert _maxdiff(dec(lat[:, :, :n]), fixture_io["audio.mel_prefix"]) <= TOL


@torch.no_grad()
def test_vocoder(fixture_weights: Path, fixture_io: dict[str, torch.Tensor]) -> None:
    voc = mw.load_vocoder(fixture_weights)
    wave = voc(fixture_io["audio.mel"])
    assert wave.dtype == torch.float32
    assert _maxdiff(wave, fixture_io["vocoder.waveform"]) <= TOL


@torch.no_grad()
def test_text_path(fixture_weights: Path, fixture_io: dict[str, torch.Tensor]) -> None:
    ext = mw.load_feature_extractor(fixture_weights)
    video, audio = mw.load_text_connectors(fixture_weights)
    assert video.config.max_pos == 4096  # read from the header, not defaulted
    mask = fixture_io["text.attention_mask"]
    normed = normalize_and_concat_hidden_states(ext.stack(fixture_io["text.hidden_states"]), mask)
    assert _maxdiff(normed, fixture_io["text.normed_concat"]) <= TOL
    features = ext(fixture_io["text.hidden_states"], mask)
    assert _maxdiff(features, fixture_io["text.aggregate_out"]) <= TOL
    regs = video.replace_padding_with_registers(features, mask)
    assert _maxdiff(regs, fixture_io["text.video_connector_after_registers"]) <= TOL
    ctx = encode_text_contexts(features, mask, video, audio)
    assert _maxdiff(ctx.video, fixture_io["text.video_context"]) <= TOL
    assert _maxdiff(ctx.audio, fixture_io["text.audio_context"]) <= TOL
    assert torch.equal(ctx.attention_mask, fixture_io["text.output_attention_mask"])


@torch.no_grad()
def test_connector_max_pos_both_values(fixture_weights: Path, fixture_io: dict[str, torch.Tensor]) -> None:
    """max_pos 4096 (header) and 1 (ltx-core default) both match their references and differ from each other."""
    features, mask = fixture_io["text.aggregate_out"], fixture_io["text.attention_mask"]
    meta = mw.read_checkpoint_config(fixture_weights)
    one = TextConnectorConfig.from_checkpoint_metadata(meta, max_pos=1)
    video1, _ = mw.load_text_connectors(fixture_weights, config=one)
    assert _maxdiff(video1(features, mask), fixture_io["text.video_context_maxpos1"]) <= TOL
    assert _maxdiff(fixture_io["text.video_context_maxpos1"], fixture_io["text.video_context"]) > 1e-2
    # A header without the key falls back to ltx-core's [1], explicitly.
    del meta["transformer"]["connector_positional_embedding_max_pos"]
    assert TextConnectorConfig.from_checkpoint_metadata(meta).max_pos == 1


def test_checker_covers_every_key(fixture_dir: Path, fixture_io: dict[str, torch.Tensor]) -> None:
    assert is_media_fixture(fixture_dir)
    assert not is_media_fixture(fixture_dir.parent / "ltx2_tiny_reference")
    rows = check_media_fixture(fixture_dir)
    assert sorted(r[0] for r in rows) == sorted(fixture_io)
    for key, diff, status in rows:
        if status == "input":
            assert key in {"video.latent", "audio.latent", "text.hidden_states", "text.attention_mask"}
        else:
            assert status == "ok" and diff is not None and diff <= TOL, (key, diff, status)


def test_checker_reports_failures(tmp_path: Path, fixture_dir: Path, fixture_io: dict[str, torch.Tensor]) -> None:
    """A perturbed reference and an unknown key are reported, not skipped."""
    from safetensors.torch import save_file

    for name in ("weights.safetensors", "config.json"):
        (tmp_path / name).symlink_to(fixture_dir / name)
    io = {k: v for k, v in fixture_io.items() if k.startswith(("audio.", "text."))}  # video group: see below
    io["audio.mel"] = io["audio.mel"] + 1e-3
    io["video.something_new"] = torch.zeros(1)
    io["text.something_new"] = torch.zeros(1)
    save_file(io, str(tmp_path / "io.safetensors"))
    rows = {r.key: r for r in check_media_fixture_rows(tmp_path)}
    assert sorted(rows) == sorted(io)
    assert rows["audio.mel"].status == "FAIL" and rows["audio.mel"].diff == pytest.approx(1e-3, rel=1e-2)
    assert rows["text.something_new"].status == "not covered"
    # The video group has no input latent: its key is reported as not covered, with the reason.
    assert rows["video.something_new"].status == "not covered" and "video.latent" in rows["video.something_new"].note
    assert rows["text.video_context"].status == "ok" and rows["audio.mel_prefix"].status == "ok"
