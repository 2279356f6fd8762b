"""Check our transformer against a reference fixture (format: shared/fixtures/README.md).

Everything is taken from the fixture: architecture from the weights' ``config`` metadata, student
geometry and block layout from ``config.json`` ``causal_config``, teacher conventions from
``teacher_overrides``, sizes from the tensors themselves. Groups: ``bidir.*`` (student and teacher
single passes), ``masked.*`` (full-sequence block-causal forward), and the streaming groups
``trace.*`` / ``causal.*`` / ``step.*`` (see :mod:`omniforcing_rt.checks.stream_fixture`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from omniforcing_rt.checks.report import Row, compare
from omniforcing_rt.errors import CheckpointError
from omniforcing_rt.model.config import Convention, ModelConfig
from omniforcing_rt.model.patchify import patchify_video, unpatchify_video
from omniforcing_rt.model.positions import audio_positions, video_positions
from omniforcing_rt.model.transformer import AVTransformer, Modality, TextContext
from omniforcing_rt.model.weights import load_transformer
from omniforcing_rt.pipeline.layout import BlockLayout, LayoutKind

__all__ = ["TransformerFixture", "check_transformer_fixture", "is_transformer_fixture"]

_INPUTS = re.compile(
    r"^(context\..*"
    r"|bidir\.(video_tokens|audio_tokens|video_positions|audio_positions|video_timesteps|audio_timesteps"
    r"|video_sigma_per_frame|audio_sigma_per_frame|video_latent_bfchw)"
    r"|masked\.(video_in|audio_in|video_sigma|audio_sigma)"
    r"|trace\.\d+\.(video_in|audio_in|video_sigma|audio_sigma))$"
)


_GRID_KEYS = ("bidir.video_latent_bfchw", "masked.video_in", "trace.00.video_in", "causal.final_video")


def is_transformer_fixture(d: Path) -> bool:
    """True if ``d`` looks like a transformer fixture (weights with the LTX-2 transformer prefix)."""
    cfg = d / "config.json"
    if not (cfg.exists() and (d / "weights.safetensors").exists() and (d / "io.safetensors").exists()):
        return False
    try:
        return "causal_config" in json.loads(cfg.read_text()) or "ltx_core_config" in json.loads(cfg.read_text())
    except json.JSONDecodeError:
        return False


@dataclass
class TransformerFixture:
    """A loaded fixture: the model, its geometry and the reference tensors."""

    root: Path
    config: dict[str, Any]
    io: dict[str, torch.Tensor]
    model: AVTransformer
    grid_hw: tuple[int, int]
    layout_kind: LayoutKind
    first_block_frames: int
    block_frames: int
    sinks: int

    @classmethod
    def load(cls, root: Path, attention_backend: str = "sdpa") -> TransformerFixture:
        try:
            config = json.loads((root / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{root}/config.json unreadable: {e}") from None
        causal = config.get("causal_config", {})
        sinks = int(causal.get("num_audio_sink_tokens", 0) or 0)
        with safe_open(str(root / "weights.safetensors"), framework="pt") as f:
            meta = (f.metadata() or {}).get("config")
        if meta is None:
            meta = json.dumps(config.get("ltx_core_config", {}))
        model_cfg = ModelConfig.from_metadata(meta, audio_sink_tokens=sinks)
        model, _, _ = load_transformer(root / "weights.safetensors", config=model_cfg)
        model.attention_backend = attention_backend
        io = load_file(str(root / "io.safetensors"))
        grid = tuple(config.get("derived_dims", {}).get("latent_grid_hw", ()))
        if len(grid) != 2:  # fall back to any stored [B, F, C, H, W] video latent
            grid = next((tuple(io[k].shape[-2:]) for k in _GRID_KEYS if k in io and io[k].ndim == 5), ())
        if len(grid) != 2:
            raise CheckpointError(f"{root}: no latent grid (config derived_dims.latent_grid_hw, or a 5-D video latent)")
        release = "num_frame_per_block_first" in causal
        kind = LayoutKind.RELEASE if release else LayoutKind.PAPER
        f0 = int(causal["num_frame_per_block_first"]) if release else 1
        return cls(
            root=root, config=config, io=io, model=model,
            grid_hw=(int(grid[0]), int(grid[1])), layout_kind=kind, first_block_frames=f0,
            block_frames=int(causal.get("num_frame_per_block", 3)), sinks=sinks,
        )  # fmt: skip

    @property
    def tokens_per_frame(self) -> int:
        return self.grid_hw[0] * self.grid_hw[1]

    def layout(self, video_latents: int) -> BlockLayout:
        return BlockLayout.for_video_latents(
            self.layout_kind, video_latents, self.tokens_per_frame,
            first_block_frames=self.first_block_frames, block_frames=self.block_frames,
            audio_sink_tokens=self.sinks,
        )  # fmt: skip

    def teacher_convention(self) -> Convention:
        over = self.config.get("teacher_overrides")
        return Convention(**over) if over else Convention.teacher()

    def text(self) -> TextContext:
        io = self.io
        return self.model.encode_text(io["context.video"], io["context.audio"], io.get("context.attention_mask"))


def _bidir(fx: TransformerFixture, text: TextContext) -> dict[str, torch.Tensor]:
    io, out = fx.io, {}
    if "bidir.video_tokens" not in io:
        return out
    vs = io["bidir.video_timesteps"][..., 0] if "bidir.video_timesteps" in io else None
    as_ = io["bidir.audio_timesteps"][..., 0] if "bidir.audio_timesteps" in io else None
    video = Modality(io["bidir.video_tokens"], vs, io["bidir.video_positions"])
    audio = Modality(io["bidir.audio_tokens"], as_, io["bidir.audio_positions"])
    for name, conv in (("student", Convention.student()), ("teacher", fx.teacher_convention())):
        if not any(k.startswith(f"bidir.{name}.") for k in io):
            continue
        ref_audio_in = io.get(f"bidir.{name}.hidden.audio_in")
        with_sinks = (
            bool(fx.sinks) and ref_audio_in is not None and ref_audio_in.shape[1] == audio.latent.shape[1] + fx.sinks
        )
        cap: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            vv, av = fx.model(video, audio, text, conv, capture=cap, with_sinks=with_sinks)
            rope = fx.model.rope(video.positions, audio.positions, conv, torch.float32, fx.sinks if with_sinks else 0)
        p = f"bidir.{name}."
        out[p + "video_velocity"], out[p + "audio_velocity"] = vv, av
        out[p + "video_x0"] = AVTransformer.to_x0(video.latent, vv, video.sigma)
        out[p + "audio_x0"] = AVTransformer.to_x0(audio.latent, av, audio.sigma)
        out.update({p + k: v for k, v in cap.items()})
        out.update(_rope_keys(p + "pe.", rope))
    return out


def _rope_keys(prefix: str, rope: Any) -> dict[str, torch.Tensor]:
    return {
        prefix + "video_cos": rope.video[0], prefix + "video_sin": rope.video[1],
        prefix + "audio_cos": rope.audio[0], prefix + "audio_sin": rope.audio[1],
        prefix + "video_cross_cos": rope.video_cross[0], prefix + "video_cross_sin": rope.video_cross[1],
        prefix + "audio_cross_cos": rope.audio_cross[0], prefix + "audio_cross_sin": rope.audio_cross[1],
    }  # fmt: skip


def _masked(fx: TransformerFixture, text: TextContext) -> dict[str, torch.Tensor]:
    from omniforcing_rt.pipeline.masks import BlockCausalMasks

    io = fx.io
    if "masked.video_in" not in io:
        return {}
    vin, ain = io["masked.video_in"], io["masked.audio_in"]
    _, f, _, h, w = vin.shape
    layout = fx.layout(f)
    masks = BlockCausalMasks.from_layout(layout)
    video = Modality(
        patchify_video(vin),
        io["masked.video_sigma"].repeat_interleave(h * w, dim=1),
        video_positions(0, f, h, w, style="causal"),
    )
    audio = Modality(ain, io["masked.audio_sigma"], audio_positions(0, ain.shape[1], style="causal"))
    cap: dict[str, torch.Tensor] = {}
    conv = Convention.student()
    with torch.no_grad():
        rules = {name: getattr(masks, name) for name in ("video_self", "audio_self", "a2v", "v2a")}
        vv, av = fx.model(video, audio, text, conv, masks=rules, capture=cap, with_sinks=bool(fx.sinks))
        rope = fx.model.rope(video.positions, audio.positions, conv, torch.float32, fx.sinks)
    out = {
        "masked.video_velocity": unpatchify_video(vv, f, h, w),
        "masked.audio_velocity": av,
        "masked.video_x0": unpatchify_video(AVTransformer.to_x0(video.latent, vv, video.sigma), f, h, w),
        "masked.audio_x0": AVTransformer.to_x0(ain, av, audio.sigma),
    }
    out.update({f"masked.mask.{k}": v for k, v in masks.dense().items()})
    out.update({"masked." + k: v for k, v in cap.items()})
    out.update(_rope_keys("masked.pe.", rope))
    return out


def check_transformer_fixture(root: Path, attention_backend: str = "sdpa") -> list[Row]:
    """One row per key of ``io.safetensors``: compared outputs, inputs, and uncovered keys.

    ``attention_backend='ofrt'`` runs the temporal attentions through the project's kernel op.
    """
    from omniforcing_rt.checks.stream_fixture import streaming_predictions

    fx = TransformerFixture.load(root, attention_backend)
    text = fx.text()
    preds: dict[str, torch.Tensor] = {}
    preds.update(_bidir(fx, text))
    preds.update(_masked(fx, text))
    preds.update(streaming_predictions(fx, text))
    rows = []
    for key in sorted(fx.io):
        if _INPUTS.match(key):
            rows.append(Row(key, None, "input"))
        elif key in preds:
            rows.append(compare(key, preds[key], fx.io[key]))
        else:
            rows.append(Row(key, None, "not covered"))
    return rows
