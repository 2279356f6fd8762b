"""Package trained world media models as a media checkpoint the project's loaders read.

``media.safetensors`` uses the real LTX-2 key layout (``vae.decoder.*``,
``vae.per_channel_statistics.*``, ``audio_vae.decoder.*``, ``audio_vae.per_channel_statistics.*``,
``vocoder.*``) with the ``vae`` / ``audio_vae`` / ``vocoder`` sections in its ``config`` metadata,
so :func:`~omniforcing_rt.media.decode_worker.load_media_decoders` (and a ``model.json`` with
``"media": "media.safetensors"``) load it unchanged. The encoders sit beside them under
``vae.encoder.*`` / ``audio_vae.encoder.*`` (where the LTX-2 single file keeps its encoders; the
decoder loaders ignore them) and load with :func:`load_world_encoders`.

Latent normalisation is fixed here, as LTX-2 does it: per-channel mean and std of the raw latents
of ``stats_clips`` train clips become the encoders' ``latent_mean`` / ``latent_std`` and the
decoders' ``mean-of-means`` / ``std-of-means``, so normalised latents are ~N(0, 1) per channel
and decoding is unchanged. ``media.json`` records what was trained and how well.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from omniforcing_rt.media import weights as mw
from omniforcing_rt.media.audio_vae import audio_latent_to_tokens
from omniforcing_rt.world.dataset import clip_seed, make_clip
from omniforcing_rt.world.scene import WorldConfig
from omniforcing_rt.world_models.audio_encoder import AudioEncoder, AudioEncoderConfig
from omniforcing_rt.world_models.data import frames_to_video
from omniforcing_rt.world_models.media_config import MediaSizes
from omniforcing_rt.world_models.mel import log_mel
from omniforcing_rt.world_models.train_media import MediaTrainer, default_train_config
from omniforcing_rt.world_models.video_encoder import VideoEncoder, VideoEncoderConfig

__all__ = ["AUDIO_ENCODER_KEYS", "VIDEO_ENCODER_KEYS", "export_media", "load_world_encoders"]

VIDEO_ENCODER_KEYS = mw.ComponentKeys("world video encoder", (("vae.encoder.", ""),))
AUDIO_ENCODER_KEYS = mw.ComponentKeys("world audio encoder", (("audio_vae.encoder.", ""),))
_STORAGE = {"fp8": torch.float8_e4m3fn, "fp16": torch.float16, "fp32": torch.float32}


def _trained(runs: Path, part: str) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """The modules of a finished (or stopped) run, in eval mode, and its summary."""
    ckpt = torch.load(runs / part / "checkpoint.pt", map_location="cpu", weights_only=False)
    cfg = ckpt["config"]
    sizes = MediaSizes(
        vocoder_width=cfg["vocoder_width"],
        video_res_layers=cfg.get("video_res_layers", 0),
        video_encoder=VideoEncoderConfig(**cfg["sizes"]["video"]),
        audio_encoder=AudioEncoderConfig(**{**cfg["sizes"]["audio"], "widths": tuple(cfg["sizes"]["audio"]["widths"])}),
    )
    keep = ("seed", "steps", "batch", "window", "lr", "kl_weight", "noise_std", "object_weight")
    trainer = MediaTrainer(default_train_config(part, sizes=sizes, **{k: cfg[k] for k in keep}))
    for name, module in trainer.modules.items():
        module.load_state_dict(ckpt["models"][name])
        module.eval()
    summary = {"steps_done": ckpt["step"], "train_seconds": round(ckpt["elapsed_s"], 1), **{k: cfg[k] for k in keep},
               "video_res_layers": sizes.video_res_layers}  # fmt: skip
    return trainer.modules, summary


@torch.no_grad()
def _latent_statistics(
    video: VideoEncoder, audio: AudioEncoder, clips: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(video mean, video std [C], audio mean, audio std [z f]) of raw latents of train clips."""
    world = WorldConfig()
    v, a = [], []
    for i in range(clips):
        clip = make_clip(world, clip_seed("train", i))
        v.append(video.raw(frames_to_video(clip.frames)[None])[0].flatten(1))  # [C, F' h w]
        a.append(audio_latent_to_tokens(audio.raw(log_mel(torch.from_numpy(clip.audio))[None]))[0])  # [T, z f]
    vv, aa = torch.cat(v, dim=1), torch.cat(a, dim=0)
    return vv.mean(1), vv.std(1).clamp(min=1e-3), aa.mean(0), aa.std(0).clamp(min=1e-3)


def _set_statistics(decoder: nn.Module, encoder: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
    with torch.no_grad():
        encoder.get_buffer("latent_mean").copy_(mean)
        encoder.get_buffer("latent_std").copy_(std)
        stats = decoder.per_channel_statistics
        stats.get_buffer("std-of-means").copy_(std)
        stats.get_buffer("mean-of-means").copy_(mean)
        if hasattr(stats, "mean-of-stds_over_std-of-means"):
            stats.get_buffer("mean-of-stds_over_std-of-means").copy_(1.0 / std)


def _tensors(module: nn.Module, keys: mw.ComponentKeys, storage: torch.dtype) -> dict[str, torch.Tensor]:
    """Checkpoint tensors: weights (ndim >= 2) in ``storage``, biases and statistics in fp32."""
    out = {}
    for name, t in module.state_dict().items():
        t = t.detach().contiguous()
        out[keys.checkpoint_key(name)] = t.to(storage) if t.ndim >= 2 else t.float()
    return out


def export_media(
    runs: Path, out: Path, *, storage: str = "fp16", video_storage: str | None = None, stats_clips: int = 32
) -> dict[str, Any]:
    """Write ``out/media.safetensors`` + ``out/media.json`` from the runs under ``runs``; returns media.json.

    ``storage`` is the dtype of the audio models' weights (ndim >= 2) and ``video_storage`` (default
    the same) the video models' (decoder and encoder); the vocoder stays fp32.
    """
    video, v_sum = _trained(runs, "video")
    audio, a_sum = _trained(runs, "audio")
    vocoder, c_sum = _trained(runs, "vocoder")
    vm, vs, am, as_ = _latent_statistics(video["encoder"], audio["encoder"], stats_clips)
    _set_statistics(video["decoder"], video["encoder"], vm, vs)
    _set_statistics(audio["decoder"], audio["encoder"], am, as_)
    sizes = MediaSizes(
        vocoder_width=vocoder["vocoder"].config.upsample_initial_channel,
        video_res_layers=v_sum["video_res_layers"],
        video_encoder=video["encoder"].config,
        audio_encoder=audio["encoder"].config,
    )
    dtype, vdtype = _STORAGE[storage], _STORAGE[video_storage or storage]
    state = {
        **_tensors(video["decoder"], mw.VIDEO_DECODER_KEYS, vdtype),
        **_tensors(audio["decoder"], mw.AUDIO_DECODER_KEYS, dtype),
        **_tensors(vocoder["vocoder"], mw.VOCODER_KEYS, torch.float32),
        **_tensors(video["encoder"], VIDEO_ENCODER_KEYS, vdtype),
        **_tensors(audio["encoder"], AUDIO_ENCODER_KEYS, dtype),
    }
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "media.safetensors"), metadata={"config": json.dumps(sizes.metadata())})
    info = {
        "media": "media.safetensors",
        "description": "Video VAE, audio VAE (LTX-2 decoders + mirror encoders) and vocoder trained on the "
        "synthetic world (issue #10); see omniforcing_rt/world_models/README.md.",
        "storage": {"audio": storage, "video": video_storage or storage, "vocoder": "fp32"},
        "latent_statistics_clips": stats_clips,
        "trained": {"video": v_sum, "audio": a_sum, "vocoder": c_sum},
        "raw_latent": {
            "video_mean": round(float(vm.mean()), 4), "video_std": round(float(vs.mean()), 4),
            "audio_mean": round(float(am.mean()), 4), "audio_std": round(float(as_.mean()), 4),
        },
    }  # fmt: skip
    (out / "media.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def load_world_encoders(path: Path | str, *, dtype: torch.dtype = torch.float32) -> tuple[VideoEncoder, AudioEncoder]:
    """The (video, audio) encoders of an exported ``media.safetensors`` (strict, eval mode)."""
    sizes = MediaSizes.from_metadata(mw.read_checkpoint_config(path))
    video = mw.load_component(lambda: VideoEncoder(sizes.video_encoder), path, VIDEO_ENCODER_KEYS, dtype=dtype)
    audio = mw.load_component(lambda: AudioEncoder(sizes.audio_encoder), path, AUDIO_ENCODER_KEYS, dtype=dtype)
    return video, audio
