"""Strict media loader: missing / unexpected / mis-shaped keys raise CheckpointError naming them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from omniforcing_rt.errors import CheckpointError
from omniforcing_rt.media import weights as mw


def _rewrite(
    src: Path, dst: Path, edit: dict[str, torch.Tensor | None], metadata: dict[str, str] | None = None
) -> Path:
    """Copy a checkpoint, replacing (tensor) or dropping (None) the given keys."""
    tensors = load_file(str(src))
    with safe_open(str(src), framework="pt") as f:
        meta = f.metadata() if metadata is None else metadata
    for key, value in edit.items():
        if value is None:
            tensors.pop(key)
        else:
            tensors[key] = value
    save_file(tensors, str(dst), metadata=meta)
    return dst


def test_missing_key(tmp_path: Path, fixture_weights: Path) -> None:
    bad = _rewrite(fixture_weights, tmp_path / "w.safetensors", {"vae.decoder.conv_in.conv.bias": None})
    with pytest.raises(CheckpointError, match=r"missing 1 key\(s\): vae\.decoder\.conv_in\.conv\.bias"):
        mw.load_video_decoder(bad)
    mw.load_audio_decoder(bad)  # other components are unaffected


def test_missing_statistics_key_named_with_its_prefix(tmp_path: Path, fixture_weights: Path) -> None:
    bad = _rewrite(fixture_weights, tmp_path / "w.safetensors", {"audio_vae.per_channel_statistics.std-of-means": None})
    with pytest.raises(CheckpointError, match=r"audio_vae\.per_channel_statistics\.std-of-means"):
        mw.load_audio_decoder(bad)


def test_unexpected_key(tmp_path: Path, fixture_weights: Path) -> None:
    extra = {
        "vocoder.resblocks.99.convs1.0.weight": torch.zeros(2, 2, 3),
        "model.diffusion_model.audio_embeddings_connector.extra.bias": torch.zeros(3),
    }
    bad = _rewrite(fixture_weights, tmp_path / "w.safetensors", extra)
    with pytest.raises(CheckpointError, match=r"unexpected 1 key\(s\): vocoder\.resblocks\.99\.convs1\.0\.weight"):
        mw.load_vocoder(bad)
    with pytest.raises(CheckpointError, match="audio_embeddings_connector.extra.bias"):
        mw.load_text_connectors(bad)


def test_wrong_shape(tmp_path: Path, fixture_weights: Path) -> None:
    bad = _rewrite(
        fixture_weights,
        tmp_path / "w.safetensors",
        {"text_embedding_projection.aggregate_embed.weight": torch.zeros(16, 783)},
    )
    with pytest.raises(CheckpointError, match=r"aggregate_embed\.weight: shape \[16, 783\]"):
        mw.load_feature_extractor(bad)


def test_config_metadata_required(tmp_path: Path, fixture_weights: Path) -> None:
    bad = _rewrite(fixture_weights, tmp_path / "w.safetensors", {}, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="no 'config'"):
        mw.load_video_decoder(bad)
    with pytest.raises(CheckpointError, match="not found"):
        mw.load_vocoder(tmp_path / "absent.safetensors")


def test_weights_that_do_not_fit_the_config(tmp_path: Path, fixture_weights: Path) -> None:
    """A header claiming one more res layer than the file holds: the missing layer is named."""
    with safe_open(str(fixture_weights), framework="pt") as f:
        cfg = json.loads(f.metadata()["config"])
    cfg["vae"]["decoder_blocks"][0][1]["num_layers"] = 3  # last stage: 2 -> 3 res blocks
    bad = _rewrite(fixture_weights, tmp_path / "w.safetensors", {}, metadata={"config": json.dumps(cfg)})
    with pytest.raises(CheckpointError, match=r"up_blocks\.6\.res_blocks\.2\.conv1\.conv\.weight"):
        mw.load_video_decoder(bad)


def test_loaded_dtype_device_and_no_meta_tensors(fixture_weights: Path) -> None:
    dec = mw.load_video_decoder(fixture_weights, dtype=torch.float64)
    tensors = [*dec.parameters(), *dec.buffers()]
    assert all(t.dtype == torch.float64 and t.device.type == "cpu" and not t.is_meta for t in tensors)
    assert not dec.training
    # The stored bf16 values are upcast exactly.
    ref = load_file(str(fixture_weights))["vae.decoder.conv_in.conv.weight"]
    assert torch.equal(dec.conv_in.conv.weight, ref.double())
