"""Sample the trained world teacher for a caption, and decode its latents with the world media.

Evaluation of the teacher (and the ``teacher`` row of ``omniforcing-rt evaluate``) needs media, not
latents: :func:`generate_clip` runs the Euler sampler of
:mod:`~omniforcing_rt.world_models.flow_matching` (40 LTX2Scheduler steps by default, optional
multimodal guider) from seeded noise, then :func:`decode_latents` turns the clean latents into
frames and a waveform with the model's media decoders (``model.json`` ``media``: the exported world
media). A teacher trained on stand-in latents has no decoders; asking for media then raises.
"""

from __future__ import annotations

import numpy as np
import torch

from omniforcing_rt.distill.config import GuiderConfig
from omniforcing_rt.distill.data import keyed_generator
from omniforcing_rt.errors import ConfigError
from omniforcing_rt.media.audio_vae import audio_tokens_to_latent
from omniforcing_rt.media.decode_worker import MediaDecoders
from omniforcing_rt.media.video_vae import video_to_uint8
from omniforcing_rt.models import LoadedModel
from omniforcing_rt.pipeline.layout import audio_latents_for_video
from omniforcing_rt.world_models.caption_features import CaptionFeaturizer
from omniforcing_rt.world_models.flow_matching import NO_GUIDANCE, euler_sample

__all__ = ["decode_latents", "featurizer_of", "generate_clip", "sample_latents"]


def featurizer_of(loaded: LoadedModel) -> CaptionFeaturizer:
    """The caption featurizer a teacher directory was trained with (``model.json`` ``caption_features``)."""
    spec = loaded.info.get("caption_features") or {}
    if spec.get("kind") != "word_table":
        raise ConfigError(
            "not a world teacher", [f"{loaded.name}: model.json lacks caption_features.kind = word_table"]
        )
    return CaptionFeaturizer(loaded.text_tokens, loaded.model.config.caption_channels, int(spec.get("seed", 0)),
                             float(spec.get("position_scale", 0.5)))  # fmt: skip


@torch.no_grad()
def sample_latents(
    loaded: LoadedModel,
    caption: str,
    seed: int,
    video_latents: int = 7,
    steps: int = 40,
    guider: GuiderConfig = NO_GUIDANCE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean latents (video [F, C, h, w], audio [T, C]) for ``caption`` from noise keyed by ``seed``."""
    model, fz = loaded.model, featurizer_of(loaded)
    h, w = loaded.stream.latent_grid_hw
    cfg = model.config
    gen = keyed_generator(seed, 0x5A3)
    dev = model.patchify_proj.weight.device
    noise = (torch.randn(1, video_latents, cfg.in_channels, h, w, generator=gen).to(dev),
             torch.randn(1, audio_latents_for_video(video_latents), cfg.audio_in_channels, generator=gen).to(dev))  # fmt: skip
    c, u = fz.encode(caption), fz.encode("")
    text_c = model.encode_text(c.video.to(dev), c.audio.to(dev), c.mask.to(dev))
    text_u = model.encode_text(u.video.to(dev), u.audio.to(dev), u.mask.to(dev))
    v, a = euler_sample(model, loaded.stream.convention, text_c, text_u, noise, steps, guider)
    return v[0], a[0]


@torch.no_grad()
def decode_latents(media: MediaDecoders, video: torch.Tensor, audio: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Latents (video [F, C, h, w], audio [T, C]) -> (uint8 frames [8F - 7, H, W, 3], float32 audio [2, N])."""
    dtype = next(media.video.parameters()).dtype
    frames = video_to_uint8(media.video(video.permute(1, 0, 2, 3)[None].to(dtype)).float())[0]
    z = media.audio.config.z_channels
    mel = media.audio(audio_tokens_to_latent(audio[None].to(dtype), z))
    wave = media.vocoder(mel.float())[0]
    return frames.cpu().numpy(), wave.float().cpu().numpy()


def generate_clip(
    loaded: LoadedModel, caption: str, seed: int, steps: int = 40, guider: GuiderConfig = NO_GUIDANCE
) -> tuple[np.ndarray, np.ndarray]:
    """Frames and waveform for ``caption`` (``loaded`` must come from ``load_model(DIR, media=True)``)."""
    if loaded.media is None:
        raise ConfigError("teacher has no media decoders",
                          [f"{loaded.name}: load it with media=True; a stand-in-latent teacher cannot be decoded"])  # fmt: skip
    video, audio = sample_latents(loaded, caption, seed, steps=steps, guider=guider)
    return decode_latents(loaded.media, video, audio)
