"""Helpers of the media tests: fixture location, tolerance, and a different tiny random config."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from omniforcing_rt.media import weights as mw
from omniforcing_rt.media.audio_vae import AudioDecoder, AudioDecoderConfig
from omniforcing_rt.media.feature_extractor import FeatureExtractorConfig, GemmaFeatureExtractor
from omniforcing_rt.media.text_connector import Embeddings1DConnector, TextConnectorConfig
from omniforcing_rt.media.video_vae import VideoDecoder, VideoDecoderConfig
from omniforcing_rt.media.vocoder import Vocoder, VocoderConfig

FIXTURE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "ltx2_tiny_media"
TOL = 1e-4

# A tiny config that differs from the fixture in every size the brief names: video latent
# channels 8, patch 2, a width-changing res_x_y block (owns norm3 + conv_shortcut), a
# compress_time upsampler (temporal factor 4), non-square grids; audio z 2 / ch 32 with ch_mult
# (1, 1, 2) and 2 res blocks per level (a shortcut at level 1 only); vocoder hop 24 with two resblock kernels; text width
# 24 = 3 heads x 8, 5 hidden states, 1 layer, 4 registers, interleaved RoPE, max_pos 64.
ALT_METADATA: dict[str, Any] = {
    "vae": {
        "dims": 3, "latent_channels": 8, "out_channels": 3, "patch_size": 2, "norm_layer": "pixel_norm",
        "causal_decoder": False, "timestep_conditioning": False, "decoder_spatial_padding_mode": "reflect",
        "decoder_blocks": [
            ["res_x", {"num_layers": 1, "inject_noise": False}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x_y", {"multiplier": 2}],
            ["compress_time", {}],
            ["res_x", 2],
        ],
    },
    "audio_vae": {
        "model": {"params": {"ddconfig": {
            "ch": 32, "out_ch": 2, "ch_mult": [1, 1, 2], "num_res_blocks": 1, "attn_resolutions": [],
            "resolution": 256, "z_channels": 2, "norm_type": "pixel", "causality_axis": "height",
            "dropout": 0.0, "mid_block_add_attention": False, "mel_bins": 64,
        }}},
        "preprocessing": {"stft": {"hop_length": 160, "causal": True}},
    },
    "vocoder": {
        "upsample_initial_channel": 16, "upsample_rates": [4, 3, 2], "upsample_kernel_sizes": [8, 7, 4],
        "resblock_kernel_sizes": [3, 5], "resblock_dilation_sizes": [[1, 2, 3], [1, 3, 5]], "resblock": "1",
        "stereo": True, "output_sample_rate": 24000,
    },
    "transformer": {
        "rope_type": "interleaved", "frequencies_precision": "float32", "connector_positional_embedding_max_pos": [64],
    },
    "text_encoder_tiny": {
        "gemma_hidden_size": 24, "num_hidden_states": 5, "connector_num_attention_heads": 3,
        "connector_attention_head_dim": 8, "connector_num_layers": 1, "connector_num_learnable_registers": 4,
    },
}  # fmt: skip


def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Fill every parameter and buffer with seeded random values of a sane scale."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*module.named_parameters(), *module.named_buffers()]:
            if name.endswith("std-of-means"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif "norm" in name and t.ndim == 1 and name.endswith("weight"):
                t.copy_(1 + 0.1 * torch.randn(t.shape, generator=g))
            elif t.ndim <= 1 or name.endswith("learnable_registers"):
                t.copy_(0.3 * torch.randn(t.shape, generator=g))
            else:
                t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(t[0].numel()))
    return module.eval()


def alt_modules(metadata: dict[str, Any] = ALT_METADATA) -> dict[str, tuple[nn.Module, mw.ComponentKeys]]:
    """Random-weight modules of every media component built from ``metadata``."""
    text_cfg = TextConnectorConfig.from_checkpoint_metadata(metadata)
    return {
        "video": (
            randomize_(VideoDecoder(VideoDecoderConfig.from_checkpoint_metadata(metadata)), 1),
            mw.VIDEO_DECODER_KEYS,
        ),
        "audio": (
            randomize_(AudioDecoder(AudioDecoderConfig.from_checkpoint_metadata(metadata)), 2),
            mw.AUDIO_DECODER_KEYS,
        ),
        "vocoder": (randomize_(Vocoder(VocoderConfig.from_checkpoint_metadata(metadata)), 3), mw.VOCODER_KEYS),
        "extractor": (
            randomize_(GemmaFeatureExtractor(FeatureExtractorConfig.from_checkpoint_metadata(metadata)), 4),
            mw.FEATURE_EXTRACTOR_KEYS,
        ),
        "video_connector": (randomize_(Embeddings1DConnector(text_cfg), 5), mw.VIDEO_CONNECTOR_KEYS),
        "audio_connector": (randomize_(Embeddings1DConnector(text_cfg), 6), mw.AUDIO_CONNECTOR_KEYS),
    }


def write_checkpoint(
    path: Path, metadata: dict[str, Any], modules: dict[str, tuple[nn.Module, mw.ComponentKeys]]
) -> Path:
    """Save the modules under the real LTX-2 key layout with the ``config`` metadata."""
    tensors = {}
    for module, keys in modules.values():
        for name, t in module.state_dict().items():
            tensors[keys.checkpoint_key(name)] = t.contiguous()
    save_file(tensors, str(path), metadata={"config": json.dumps(metadata)})
    return path
