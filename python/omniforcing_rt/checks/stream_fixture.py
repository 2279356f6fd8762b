"""Streaming groups of a transformer fixture: the KV-cache rollout trace, its result, and one pass
captured in detail (caches before/after, hidden states, rotary tables).

The trace is replayed pass by pass with the fixture's own pass inputs (the official rollout drew
its noise from torch's global RNG, which an independent implementation does not share); our cache
evolves only from our own passes, so every later pass also checks the cache contents implicitly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from omniforcing_rt.model.config import Convention
from omniforcing_rt.model.positions import audio_positions, video_positions
from omniforcing_rt.model.transformer import TEMPORAL_CACHES, TextContext
from omniforcing_rt.pipeline.schedule import student_sigmas
from omniforcing_rt.pipeline.stream import StreamConfig, StreamingGenerator

if TYPE_CHECKING:
    from omniforcing_rt.checks.transformer_fixture import TransformerFixture

__all__ = ["streaming_predictions"]


def _heads(fx: TransformerFixture, name: str) -> int:
    cfg = fx.model.config
    return cfg.num_attention_heads if name == "video_self" else cfg.audio_num_attention_heads


def _cache_keys(fx: TransformerFixture, prefix: str, get: object, text: TextContext | None) -> dict[str, torch.Tensor]:
    out = {}
    for layer in range(fx.model.config.num_layers):
        for name in TEMPORAL_CACHES:
            kv = get(layer, name)  # type: ignore[operator]
            if kv is None:
                continue
            for part, t in zip(("k", "v"), kv):
                out[f"{prefix}.L{layer}.{name}.{part}"] = t.unflatten(-1, (_heads(fx, name), -1))
        if text is not None:
            for name, kv in (("video_text", text.video_kv[layer]), ("audio_text", text.audio_kv[layer])):
                out[f"{prefix}.L{layer}.{name}.k"], out[f"{prefix}.L{layer}.{name}.v"] = kv
    return out


def streaming_predictions(fx: TransformerFixture, text: TextContext) -> dict[str, torch.Tensor]:
    """Predictions for ``trace.*``, ``causal.*`` and ``step.*`` keys (empty if the fixture has none)."""
    rollout = fx.config.get("causal_rollout")
    if not rollout or "trace.00.video_in" not in fx.io:
        return {}
    io, out = fx.io, {}
    total_v = int(rollout.get("video_latent_frames", sum(rollout.get("blocks_video", []))))
    layout = fx.layout(total_v)
    cfg = StreamConfig(
        latent_grid_hw=fx.grid_hw, layout_kind=fx.layout_kind, first_block_frames=fx.first_block_frames,
        block_frames=fx.block_frames, denoising_step_list=tuple(rollout["denoising_step_list"]),
        context_noise=int(rollout.get("context_noise", 0)), convention=Convention.student(),
    )  # fmt: skip
    out["causal.sigmas"] = student_sigmas(cfg.denoising_step_list)
    gen = StreamingGenerator(fx.model, cfg)
    cache = gen.new_cache(text)
    finals: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    detail = next((e for e in rollout["trace"] if e["block"] == 1 and e["kind"] == "denoise"), None)
    for e in rollout["trace"]:
        p = f"trace.{e['index']:02d}."
        spec = layout.block(e["block"])
        if (spec.video_start, spec.audio_start) != (e["video_start_frame"], e["audio_start_frame"]):
            raise ValueError(f"trace entry {e['index']}: fixture block starts differ from the layout's")
        sigma = float(io[p + "video_sigma"].reshape(-1)[0])
        refresh = e["kind"] == "cache_refresh"
        cap: dict[str, torch.Tensor] | None = None
        if e is detail:
            out.update(_cache_keys(fx, "step.cache_before", cache.entries, text))
            cap = {}
        vx0, ax0 = gen.run_pass(cache, spec, io[p + "video_in"], io[p + "audio_in"], sigma, commit=refresh, capture=cap)
        out[p + "video_x0"], out[p + "audio_x0"] = vx0, ax0
        if not refresh:
            finals[e["block"]] = (vx0, ax0)
        if cap is not None:
            out.update({"step." + k: v for k, v in cap.items()})
            out.update(_cache_keys(fx, "step.cache_written", cache.inflight, None))
            out.update(_step_pe(fx, spec))
    if finals:
        out["causal.final_video"] = torch.cat([finals[b][0] for b in sorted(finals)], dim=1)
        out["causal.final_audio"] = torch.cat([finals[b][1] for b in sorted(finals)], dim=1)
    return out


def _step_pe(fx: TransformerFixture, spec: object) -> dict[str, torch.Tensor]:
    from omniforcing_rt.checks.transformer_fixture import _rope_keys

    h, w = fx.grid_hw
    vp = video_positions(spec.video_start, spec.video_frames, h, w, style="causal")  # type: ignore[attr-defined]
    ap = audio_positions(spec.audio_start, spec.audio_frames, style="causal")  # type: ignore[attr-defined]
    rope = fx.model.rope(vp, ap, Convention.student(), torch.float32, spec.sink_tokens)  # type: ignore[attr-defined]
    return _rope_keys("step.pe.", rope)
