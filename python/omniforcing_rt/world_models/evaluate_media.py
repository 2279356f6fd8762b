"""Usefulness of the world media models, measured with the world's own scorer.

Held-out clips (never trained on) are encoded and decoded, and the reconstructions are scored
like any generated clip (:func:`~omniforcing_rt.world.score.score_clip`): if the autoencoders
lose the balls, their colours, the bounce timing or the notes, sync error and prompt accuracy
say so. Four rows separate the parts: ``ground_truth`` (the rendered clip), ``video_only``
(reconstructed frames + true audio), ``audio_only`` (true frames + encoded, decoded and vocoded
audio), ``full`` (both), plus ``vocoder_only`` (true frames + the vocoder on the true mel).
Pixel PSNR and log-mel L1 measure the reconstruction itself; the latent statistics check that the
normalised latents the teacher will be trained on are ~N(0, 1).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omniforcing_rt.media.decode_worker import MediaDecoders, load_media_decoders
from omniforcing_rt.media.video_vae import video_to_uint8
from omniforcing_rt.world.caption import prompt_spec
from omniforcing_rt.world.dataset import clip_seed, make_clip
from omniforcing_rt.world.scene import WorldConfig
from omniforcing_rt.world.score import score_clip
from omniforcing_rt.world_models.audio_encoder import AudioEncoder
from omniforcing_rt.world_models.data import frames_to_video
from omniforcing_rt.world_models.export import load_world_encoders
from omniforcing_rt.world_models.mel import log_mel
from omniforcing_rt.world_models.video_encoder import VideoEncoder

__all__ = ["ROWS", "evaluate_media", "psnr"]

ROWS = ("ground_truth", "video_only", "audio_only", "vocoder_only", "full")
"""Scored combinations of true and reconstructed media."""


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


@torch.no_grad()
def _round_trip(
    clip_frames: np.ndarray, clip_audio: np.ndarray, enc: tuple[VideoEncoder, AudioEncoder], dec: MediaDecoders
) -> dict[str, Any]:
    """Reconstructions of one clip and its latents."""
    t0 = time.perf_counter()
    zv = enc[0](frames_to_video(clip_frames)[None])
    frames = video_to_uint8(dec.video(zv))[0].numpy()
    t1 = time.perf_counter()
    mel = log_mel(torch.from_numpy(clip_audio))[None]
    za = enc[1](mel)
    mel_rec = dec.audio(za)
    audio = dec.vocoder(mel_rec)[0].numpy()
    vocoded = dec.vocoder(mel)[0].numpy()
    t2 = time.perf_counter()
    return {
        "frames": frames, "audio": audio, "vocoded": vocoded, "zv": zv, "za": za,
        "mel_l1_ae": float((mel_rec - mel).abs().mean()),
        "mel_l1_full": float((log_mel(torch.from_numpy(audio)) - mel[0]).abs().mean()),
        "mel_l1_vocoder": float((log_mel(torch.from_numpy(vocoded)) - mel[0]).abs().mean()),
        "video_s": t1 - t0, "audio_s": t2 - t1,
    }  # fmt: skip


def _score_rows(clip: Any, rt: dict[str, Any], world: WorldConfig) -> dict[str, dict[str, float]]:
    spec = prompt_spec(clip.scene)
    media = {
        "ground_truth": (clip.frames, clip.audio),
        "video_only": (rt["frames"], clip.audio),
        "audio_only": (clip.frames, rt["audio"]),
        "vocoder_only": (clip.frames, rt["vocoded"]),
        "full": (rt["frames"], rt["audio"]),
    }
    out = {}
    for row, (frames, audio) in media.items():
        s = score_clip(frames, audio, spec, world)
        out[row] = {"sync_error_ms": s.sync_error_ms, "onset_recall": s.onset_recall,
                    "prompt_accuracy": s.prompt_accuracy, "errors": list(s.onset_errors_ms)}  # fmt: skip
    return out


def _summary(rows: list[dict[str, Any]], zv: list[torch.Tensor], za: list[torch.Tensor]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for row in ROWS:
        scores = [r["scores"][row] for r in rows]
        pooled = [e for s in scores for e in s["errors"]]
        summary[row] = {
            "sync_error_ms_pooled_median": float(np.median(pooled)) if pooled else 500.0,
            "sync_error_ms_clip_mean": float(np.mean([s["sync_error_ms"] for s in scores])),
            "onset_recall": float(np.nanmean([s["onset_recall"] for s in scores])),
            "prompt_accuracy": float(np.nanmean([s["prompt_accuracy"] for s in scores])),
        }
    for key in ("psnr_db", "mel_l1_ae", "mel_l1_vocoder", "mel_l1_full", "video_s", "audio_s"):
        summary[key] = float(np.mean([r[key] for r in rows]))
    v, a = torch.cat([z.flatten(2) for z in zv], dim=2), torch.cat(za, dim=2)
    summary["latents"] = {
        "video_mean": float(v.mean()), "video_std": float(v.std()),
        "video_channel_std_range": [float(v.std(dim=(0, 2)).min()), float(v.std(dim=(0, 2)).max())],
        "audio_mean": float(a.mean()), "audio_std": float(a.std()),
    }  # fmt: skip
    return summary


def evaluate_media(model_dir: Path, count: int = 16, world: WorldConfig | None = None) -> dict[str, Any]:
    """Round-trip the first ``count`` held-out clips through the media in ``model_dir`` and score them."""
    world = world or WorldConfig()
    path = model_dir / "media.safetensors"
    dec = load_media_decoders(path)
    enc = load_world_encoders(path)
    rows, zv, za = [], [], []
    for i in range(count):
        seed = clip_seed("heldout", i)
        clip = make_clip(world, seed)
        rt = _round_trip(clip.frames, clip.audio, enc, dec)
        zv.append(rt["zv"])
        za.append(rt["za"])
        keys = ("mel_l1_ae", "mel_l1_vocoder", "mel_l1_full", "video_s", "audio_s")
        rows.append({"seed": seed, "psnr_db": psnr(rt["frames"], clip.frames), **{k: rt[k] for k in keys},
                     "scores": _score_rows(clip, rt, world)})  # fmt: skip
    return {"count": count, "summary": _summary(rows, zv, za), "clips": rows}
