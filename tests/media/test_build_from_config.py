"""Components built from a config unlike the fixture's (random weights): nothing is hard-coded."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from omniforcing_rt.errors import ConfigError, UnsupportedError
from omniforcing_rt.media import weights as mw
from omniforcing_rt.media.audio_vae import AudioDecoderConfig
from omniforcing_rt.media.feature_extractor import FeatureExtractorConfig
from omniforcing_rt.media.text_connector import TextConnectorConfig, encode_text_contexts
from omniforcing_rt.media.video_vae import VideoDecoderConfig, video_to_uint8, video_tokens_to_latent
from omniforcing_rt.media.vocoder import VocoderConfig

from .helpers import ALT_METADATA


@torch.no_grad()
def test_video_decoder_alt_shapes_and_keys(alt_checkpoint: Path) -> None:
    dec = mw.load_video_decoder(alt_checkpoint)
    cfg = dec.config
    assert (cfg.initial_channels, cfg.final_channels, cfg.temporal_factor, cfg.spatial_factor) == (32, 8, 4, 4)
    keys = set(dec.state_dict())
    # Shortcut weights exist exactly where the width changes (the res_x_y block, up_blocks.2).
    assert {k for k in keys if "shortcut" in k or "norm3" in k} == {
        "up_blocks.2.conv_shortcut.weight", "up_blocks.2.conv_shortcut.bias", "up_blocks.2.norm3.weight",
        "up_blocks.2.norm3.bias",
    }  # fmt: skip
    assert dec.conv_in.conv.weight.shape == (32, 8, 3, 3, 3)
    assert dec.conv_out.conv.weight.shape == (12, 8, 3, 3, 3)
    lat = torch.randn(2, 8, 3, 2, 3)  # non-square grid
    out = dec(lat)
    assert out.shape == (2, 3, 9, 8, 12)
    assert torch.isfinite(out).all() and out.std() > 0
    assert video_to_uint8(out).shape == (2, 9, 8, 12, 3)
    tokens = lat.permute(0, 2, 3, 4, 1).reshape(2, 3 * 2 * 3, 8)
    assert torch.equal(video_tokens_to_latent(tokens, 3, 2, 3), lat)


@torch.no_grad()
def test_audio_decoder_alt_shapes_and_keys(alt_checkpoint: Path) -> None:
    dec = mw.load_audio_decoder(alt_checkpoint)
    assert dec.config.latent_mel_bins == 16
    shortcuts = {k for k in dec.state_dict() if "nin_shortcut" in k and k.endswith("weight")}
    assert shortcuts == {"up.1.block.0.nin_shortcut.conv.weight"}  # the only width change (64 -> 32)
    assert [len(level.block) for level in dec.up] == [2, 2, 2]
    assert dec.conv_in.conv.weight.shape == (64, 2, 3, 3)
    for t in (1, 2, 7):
        assert dec(torch.randn(1, 2, t, 16)).shape == (1, 2, 4 * t - 3, 64)


@torch.no_grad()
def test_vocoder_alt_shapes(alt_checkpoint: Path) -> None:
    voc = mw.load_vocoder(alt_checkpoint)
    assert voc.config.hop_length == 24 and len(voc.resblocks) == 3 * 2
    wave = voc(torch.randn(2, 2, 9, 64))
    assert wave.shape == (2, 2, 24 * 9) and wave.dtype == torch.float32
    assert wave.abs().max() < 1


@torch.no_grad()
def test_text_path_alt(alt_checkpoint: Path) -> None:
    ext = mw.load_feature_extractor(alt_checkpoint)
    video, audio = mw.load_text_connectors(alt_checkpoint)
    assert video.config.max_pos == 64 and video.config.inner_dim == 24 and len(video.transformer_1d_blocks) == 1
    b, length, valid = 2, 12, (7, 3)
    mask = torch.zeros(b, length, dtype=torch.int64)
    for i, n in enumerate(valid):
        mask[i, length - n :] = 1  # left padding
    hidden = [torch.randn(b, length, 24) for _ in range(5)]
    for h in hidden:
        h[mask == 0] = float("nan")  # padded positions must not leak, even when non-finite
    features = ext(hidden, mask)
    assert features.shape == (b, length, 24) and torch.isfinite(features).all()
    ctx = encode_text_contexts(features, mask, video, audio)
    assert ctx.video.shape == ctx.audio.shape == (b, length, 24)
    assert torch.isfinite(ctx.video).all() and not torch.allclose(ctx.video, ctx.audio)
    # Batch items are independent (ltx-core is only correct for batch 1).
    for i in range(b):
        single = encode_text_contexts(features[i : i + 1], mask[i : i + 1], video, audio)
        torch.testing.assert_close(single.video, ctx.video[i : i + 1], atol=1e-5, rtol=1e-5)
    # Register replacement: valid rows first, then register p mod R.
    packed = video.replace_padding_with_registers(features, mask)
    torch.testing.assert_close(packed[1, :3], features[1, -3:])
    regs = video.learnable_registers
    torch.testing.assert_close(packed[1, 3:], torch.cat([regs, regs, regs])[3:])


def test_config_errors_list_every_problem() -> None:
    meta = copy.deepcopy(ALT_METADATA)
    meta["vae"]["latent_channels"] = "eight"
    meta["vae"]["decoder_spatial_padding_mode"] = "mirror"
    meta["vae"]["decoder_blocks"].append(["warp_x", {}])
    with pytest.raises(ConfigError) as e:
        VideoDecoderConfig.from_checkpoint_metadata(meta)
    assert len(e.value.problems) == 3
    with pytest.raises(ConfigError, match="no 'vae' section"):
        VideoDecoderConfig.from_checkpoint_metadata({"audio_vae": {}})
    bad_width = copy.deepcopy(ALT_METADATA)
    bad_width["audio_vae"]["model"]["params"]["ddconfig"]["ch"] = 33  # not z_channels x bins
    with pytest.raises(ConfigError, match="z_channels"):
        AudioDecoderConfig.from_checkpoint_metadata(bad_width)
    with pytest.raises(ConfigError):
        VocoderConfig(upsample_rates=(4, 3), upsample_kernel_sizes=(8, 6))  # k - s odd; lengths differ
    with pytest.raises(ConfigError):
        TextConnectorConfig(rope_type="spiral")
    assert FeatureExtractorConfig.from_checkpoint_metadata({}) == FeatureExtractorConfig()


def test_ltx_core_defaults_that_change_the_architecture_are_refused() -> None:
    meta = copy.deepcopy(ALT_METADATA)
    del meta["vae"]["timestep_conditioning"]  # ltx-core default: true
    with pytest.raises(UnsupportedError, match="timestep_conditioning"):
        VideoDecoderConfig.from_checkpoint_metadata(meta)
    meta = copy.deepcopy(ALT_METADATA)
    del meta["audio_vae"]["model"]["params"]["ddconfig"]["mid_block_add_attention"]  # default: true
    with pytest.raises(UnsupportedError, match="mid_block_add_attention"):
        AudioDecoderConfig.from_checkpoint_metadata(meta)
    meta["audio_vae"]["model"]["params"]["ddconfig"]["mid_block_add_attention"] = False
    meta["audio_vae"]["model"]["params"]["ddconfig"]["attn_resolutions"] = [128]
    with pytest.raises(UnsupportedError, match="resolution 128"):
        AudioDecoderConfig.from_checkpoint_metadata(meta)
    meta = copy.deepcopy(ALT_METADATA)
    meta["vocoder"]["stereo"] = False
    with pytest.raises(UnsupportedError):
        VocoderConfig.from_checkpoint_metadata(meta)


def test_19b_structure_tensor_and_parameter_counts() -> None:
    """Built on the meta device from the 19B header values: the spec's tensor / parameter totals."""
    from omniforcing_rt.media.audio_vae import AudioDecoder
    from omniforcing_rt.media.text_connector import Embeddings1DConnector
    from omniforcing_rt.media.video_vae import VideoDecoder
    from omniforcing_rt.media.vocoder import Vocoder

    header = {
        "vae": {
            "timestep_conditioning": False,
            "decoder_blocks": [["res_x", {"num_layers": 5}], ["compress_all", {"residual": True, "multiplier": 2}]] * 3
            + [["res_x", {"num_layers": 5}]],
        },
        "audio_vae": {"model": {"params": {"ddconfig": {"attn_resolutions": [], "mid_block_add_attention": False}}}},
        "vocoder": {},
        "transformer": {"rope_type": "split", "frequencies_precision": "float64"},
    }
    with torch.device("meta"):
        modules = {
            "video": VideoDecoder(VideoDecoderConfig.from_checkpoint_metadata(header)),
            "audio": AudioDecoder(AudioDecoderConfig.from_checkpoint_metadata(header)),
            "vocoder": Vocoder(VocoderConfig.from_checkpoint_metadata(header)),
            "connector": Embeddings1DConnector(TextConnectorConfig.from_checkpoint_metadata(header, max_pos=4096)),
        }
    counts = {k: len(m.state_dict()) for k, m in modules.items()}
    assert counts == {"video": 95, "audio": 58, "vocoder": 194, "connector": 29}
    millions = {k: sum(p.numel() for p in m.parameters()) / 1e6 for k, m in modules.items()}
    assert millions == pytest.approx({"video": 528.4, "audio": 31.9, "vocoder": 55.6, "connector": 354.5}, abs=0.05)
