"""Regenerate the embedded ``default`` model (seeded random weights, real LTX-2 architecture).

Run: ``python scripts/make_default_model.py`` (about 3 s on 2 CPU cores; output is bit-identical per
seed). It writes, into ``python/omniforcing_rt/assets/default/``:

- ``transformer.safetensors``: the toy AV transformer (128 latent channels, 4 x 6 latent grid);
- ``media.safetensors``: toy media decoders matching those latents, under the real LTX-2 key layout
  (``vae.decoder.*``, ``vae.per_channel_statistics.*``, ``audio_vae.*``, ``vocoder.*``) with the
  ``vae`` / ``audio_vae`` / ``vocoder`` sections in the ``config`` metadata, so the same strict
  loaders as for the 19B file read it:

  * video decoder: 128 latent channels -> 3 x 128 x 192 frames, 8 frames per latent
    (3 ``compress_time`` upsamplers, 1 ``compress_space``, patch 16); temporal support +-3 latents,
    so one block of look-ahead and one of left context decode it exactly;
  * audio decoder: latent 8 channels x 16 mel bins (= the transformer's 128 audio features) ->
    stereo 64-bin log-mel, 4 mel frames per latent (ch 128, three levels, one res block each);
  * vocoder: the LTX-2 HiFi-GAN stages (hop 240) at width 32 -> stereo 24 kHz.

  The decoders' final widths are fixed by the architecture (the video decoder ends at the latent
  width, 128; the audio decoder's base width is its 128 statistics), so their conv weights are
  stored as float8_e4m3fn (drawn on the fp8 grid; upcast at load) to keep the package small;
  biases, statistics and the vocoder stay float32.
- ``model.json``: geometry, sampling defaults and ``"media": "media.safetensors"``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from omniforcing_rt.media import weights as mw
from omniforcing_rt.media.audio_vae import AudioDecoder, AudioDecoderConfig
from omniforcing_rt.media.default_metadata import DEFAULT_MEDIA_METADATA
from omniforcing_rt.media.video_vae import VideoDecoder, VideoDecoderConfig
from omniforcing_rt.media.vocoder import Vocoder, VocoderConfig
from omniforcing_rt.model.config import ModelConfig
from omniforcing_rt.model.transformer import AVTransformer
from omniforcing_rt.models import DEFAULT_MODEL_DIR, init_random_weights, write_model_dir

CONFIG = ModelConfig(
    num_layers=2,
    num_attention_heads=4,
    attention_head_dim=16,
    in_channels=128,
    out_channels=128,
    cross_attention_dim=64,
    caption_channels=64,
    audio_num_attention_heads=4,
    audio_attention_head_dim=8,
    audio_in_channels=128,
    audio_out_channels=128,
    audio_cross_attention_dim=32,
)

MEDIA_METADATA = DEFAULT_MEDIA_METADATA

FP8 = torch.float8_e4m3fn


def init_media_(module: nn.Module, seed: int, out_gain: float) -> nn.Module:
    """Seeded init: conv weights N(0, 1/fan_in), biases N(0, 0.02^2), statistics std U(0.5, 1.5), mean N(0, 0.1^2).

    ``out_gain`` scales the last layer (``conv_out`` / ``conv_post``) to set the output level.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in sorted([*module.named_parameters(), *module.named_buffers()]):
            if name.endswith("std-of-means"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif "per_channel_statistics" in name:
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))
            elif t.ndim >= 2:
                fan_in = t[0].numel() if not isinstance(module, Vocoder) or ".ups." not in f".{name}" else t.shape[0]
                gain = out_gain if name.startswith(("conv_out", "conv_post")) else 1.0
                t.copy_(torch.randn(t.shape, generator=gen) * gain / math.sqrt(fan_in))
            else:
                t.copy_(0.02 * torch.randn(t.shape, generator=gen))
    return module.eval()


def media_state(modules: list[tuple[nn.Module, mw.ComponentKeys, bool]]) -> dict[str, torch.Tensor]:
    """Checkpoint tensors under the real key layout; conv weights of fp8 components stored as float8_e4m3fn."""
    state = {}
    for module, keys, fp8 in modules:
        for name, t in module.state_dict().items():
            t = t.detach().contiguous()
            state[keys.checkpoint_key(name)] = t.to(FP8) if fp8 and t.ndim >= 2 else t
    return state


def write_media(path: Path, seed: int) -> dict[str, int]:
    """Build, initialise and save the three media components; returns parameter counts."""
    video = init_media_(VideoDecoder(VideoDecoderConfig.from_checkpoint_metadata(MEDIA_METADATA)), seed + 1, 0.5)
    audio = init_media_(AudioDecoder(AudioDecoderConfig.from_checkpoint_metadata(MEDIA_METADATA)), seed + 2, 1.0)
    vocoder = init_media_(Vocoder(VocoderConfig.from_checkpoint_metadata(MEDIA_METADATA)), seed + 3, 0.3)
    parts = [
        (video, mw.VIDEO_DECODER_KEYS, True),
        (audio, mw.AUDIO_DECODER_KEYS, True),
        (vocoder, mw.VOCODER_KEYS, False),
    ]
    save_file(media_state(parts), str(path), metadata={"config": json.dumps(MEDIA_METADATA)})
    return {keys.name: sum(p.numel() for p in m.parameters()) for m, keys, _ in parts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(DEFAULT_MODEL_DIR))
    args = ap.parse_args()
    t0 = time.perf_counter()
    model = AVTransformer(CONFIG)
    init_random_weights(model, args.seed)
    info = {
        "name": "default",
        "description": "Seeded random weights of the LTX-2 AV architecture at toy size (untrained).",
        "seed": args.seed,
        "latent_grid_hw": [4, 6],
        "pixel_size_hw": [128, 192],
        "layout": "release",
        "denoising_step_list": [1000, 909, 725, 421, 0],
        "convention": "student",
        "text_tokens": 16,
        "media": "media.safetensors",
    }
    out = Path(args.out)
    write_model_dir(out, model, info)
    counts = write_media(out / "media.safetensors", args.seed)
    print(f"wrote {out} in {time.perf_counter() - t0:.1f} s (media parameters: {counts})")


if __name__ == "__main__":
    main()
