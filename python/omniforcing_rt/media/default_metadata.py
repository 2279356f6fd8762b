"""The checkpoint ``config`` sections of the embedded ``default`` model's media decoders.

Shared by ``scripts/make_default_model.py`` (which writes the default's ``media.safetensors``) and the
world media models (``world_models/media_config.py``), which train decoders of the same sizes.
Treat it as read-only: copy before changing (``copy.deepcopy``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_MEDIA_METADATA"]

DEFAULT_MEDIA_METADATA: dict[str, Any] = {
    "vae": {
        "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128, "patch_size": 16,
        "norm_layer": "pixel_norm", "causal_decoder": False, "timestep_conditioning": False,
        "decoder_spatial_padding_mode": "reflect",
        # Applied in reverse: compress_time x3 (8 frames per latent), then compress_space (x2).
        "decoder_blocks": [["compress_space", {}], ["compress_time", {}], ["compress_time", {}], ["compress_time", {}]],
    },
    "audio_vae": {
        "model": {"params": {"sampling_rate": 16000, "ddconfig": {
            "ch": 128, "out_ch": 2, "ch_mult": [1, 1, 1], "num_res_blocks": 0, "attn_resolutions": [],
            "resolution": 256, "z_channels": 8, "double_z": True, "norm_type": "pixel", "causality_axis": "height",
            "dropout": 0.0, "mid_block_add_attention": False, "mel_bins": 64,
        }}},
        "preprocessing": {"stft": {"hop_length": 160, "causal": True}, "mel": {"n_mel_channels": 64}},
    },
    "vocoder": {
        "resblock": "1", "stereo": True, "upsample_initial_channel": 32, "upsample_rates": [6, 5, 2, 2, 2],
        "upsample_kernel_sizes": [16, 15, 8, 4, 4], "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "output_sample_rate": 24000,
    },
}  # fmt: skip
"""video decoder (128 latent channels -> 3 x 128 x 192, 8 frames per latent), audio decoder
(8 x 16 latent -> stereo 64-bin log-mel), vocoder (HiFi-GAN stages at width 32, stereo 24 kHz)."""
