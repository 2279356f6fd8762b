"""One denoiser pass of the streaming student as a self-contained, exportable module.

The C++ engine (``csrc/runtime/engine.cc``) owns the streaming state; what it needs from the model
is one function: a transformer pass over one block's tokens, given the block's history in the
paged KV pool. :class:`DenoiserPass` is that function with every piece of state as an explicit
tensor input, so ``torch.export`` captures it once and AOTInductor compiles it into a ``.pt2``
package that ``torch::inductor::AOTIModelPackageLoader`` runs from C++.

Inputs, in :data:`INPUT_NAMES` order (B streams batched into one pass, L layers, ps page size;
``Dv``/``Da`` video/audio widths, ``Dx`` the A<->V inner dim; S = sink rows, 0 except block 0 of a
model with sinks). Per-stream tensors whose rank has no batch axis carry the B streams
concatenated along their token axis, so batch 1 is exactly the single-stream pass::

    video_tokens            [B, Tv, Cv]     patchified video latents at the pass's noise level
    audio_tokens            [B, Ta, Ca]     audio latents (sinks excluded)
    sink_rows               [S] int64       rows of the model's sink tokens to prepend (arange(S))
    sigma                   [B] float32     noise level of every token of each stream's pass
    rope_<table>_{cos,sin}  the four rotary tables of ``AVTransformer.rope`` (video, audio,
                            video_cross, audio_cross; audio tables carry S identity rows first),
                            interleaved [B, T, D] or split [B, H, T, D / 2H]; computed once per
                            block by the engine (csrc/runtime/engine_rope.cc)
    text_{video,audio}_{k,v} [L, B * Lt, D] per-prompt text K/V, streams concatenated
    text_mask               [B, 1, 1, Lt]   additive text mask (0 valid, -max padding)
    {video_self,v2a}_{k,v}  [L, Pv, ps, D]  the video-token page pools (K after norm + RoPE)
    {audio_self,a2v}_{k,v}  [L, Pa, ps, D]  the audio-token page pools
    video_slots             [B * Hv] int64  pool slots (page * ps + offset) of each stream's video
                                            history in token order, streams concatenated (every
                                            stream of a batch has the same history length)
    audio_slots             [B * Ha] int64  same for audio history

Outputs, in :data:`OUTPUT_NAMES` order: ``video_x0`` [B, Tv, Cv] and ``audio_x0`` [B, Ta, Ca]
(x0 = x - sigma * v in fp32, as ``AVTransformer.to_x0``), then the block's own K/V per temporal
cache stacked over layers, streams concatenated: video_self [L, B * Tv, Dv], v2a [L, B * Tv, Dx],
audio_self [L, B * (S + Ta), Da], a2v [L, B * (S + Ta), Dx].

History semantics are exactly those of the reference hook (``pipeline/kv_cache.py``): every
temporal attention attends over [history gathered from the pool, the block's own K/V], no mask.
The engine appends the refresh pass's K/V to the block's in-flight pages and drops the denoise
passes' K/V, which the reference never reads either.

Decisions (rejected alternatives in brackets):

* One graph serves block 0 and later blocks: token counts, sink rows, history length, text length
  and pool pages are dynamic dims. [Two static graphs per model: twice the compile time for no
  gain on CPU; static shapes matter for CUDA graphs, which this backend does not capture.]
* History is gathered by slot, not by page, so a block need not fill whole pages and a page never
  holds two blocks (eviction frees whole pages). [Page lists plus a valid-token count only work
  when every block but the last fills whole pages.]
* Streams are batched by concatenation on existing axes, not by a new batch axis on the text,
  slot and K/V tensors. [A new axis changes every rank between batch 1 and batch B; this way the
  batch-1 graph, its exports and the single-stream engine path are the same function.]
* The noise level is one scalar per stream and pass, so the six AdaLN MLPs run on B rows and
  broadcast over tokens.
  [The reference runs them per token: same values up to GEMM summation order, ~15 % more FLOPs
  at bench size.]
* RoPE tables are inputs. [Computing them in the graph costs float64 cos/sin every pass, and
  Inductor inlines the table into each layer's q/k kernel, recomputing it per layer; it also
  re-derives the float32 frequency grid with a vectorised pow that is an ulp off the reference,
  which is ~1e-3 rad at 1.6e4 rad frequencies.]

This module reuses the reference model's blocks unchanged (``AVBlock.forward`` with a KV hook);
only ``AVTransformer.forward``'s outer part (embedding, AdaLN, sinks, head) is restated here.
"""

from __future__ import annotations

import torch
from torch import nn

from omniforcing_rt.model.config import Convention
from omniforcing_rt.model.transformer import AVTransformer, RopeSet, TextContext, _BlockIO

__all__ = ["CACHE_ORDER", "INPUT_NAMES", "OUTPUT_NAMES", "ROPE_TABLES", "DenoiserPass"]

CACHE_ORDER = ("video_self", "v2a", "audio_self", "a2v")
"""Order of the temporal caches in inputs and outputs (video-token caches first)."""

ROPE_TABLES = ("video", "audio", "video_cross", "audio_cross")
"""The four rotary tables of a pass, in ``RopeSet`` order."""

INPUT_NAMES = (
    "video_tokens", "audio_tokens", "sink_rows", "sigma",
    *(f"rope_{t}_{f}" for t in ROPE_TABLES for f in ("cos", "sin")),
    "text_video_k", "text_video_v", "text_audio_k", "text_audio_v", "text_mask",
    *(f"{c}_{kv}" for c in CACHE_ORDER for kv in ("k", "v")),
    "video_slots", "audio_slots",
)  # fmt: skip
"""Positional input names, in order (the C++ backend passes them in this order)."""

OUTPUT_NAMES = ("video_x0", "audio_x0", *(f"{c}_{kv}" for c in CACHE_ORDER for kv in ("k", "v")))
"""Output names, in order."""

VIDEO_CACHES = ("video_self", "v2a")
"""Caches that hold video tokens (they share the video page table)."""


class _PagedHistory:
    """KV hook over the page pools: gathers history by slot and records the block's own K/V."""

    def __init__(self, pools: dict[str, tuple[torch.Tensor, torch.Tensor]], slots: dict[str, torch.Tensor]) -> None:
        self.pools = pools
        self.slots = slots
        self.new: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {c: [] for c in CACHE_ORDER}

    def __call__(self, layer: int, name: str, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, d = k.shape[0], k.shape[-1]
        self.new[name].append((k.reshape(-1, d), v.reshape(-1, d)))
        pool_k, pool_v = self.pools[name]
        slots = self.slots[name]
        h = slots.shape[0] // b  # explicit: reshape(b, -1, d) is ambiguous for block 0's empty history
        hist_k = pool_k[layer].reshape(-1, d).index_select(0, slots).reshape(b, h, d)
        hist_v = pool_v[layer].reshape(-1, d).index_select(0, slots).reshape(b, h, d)
        return torch.cat([hist_k, k], dim=1), torch.cat([hist_v, v], dim=1)

    def outputs(self) -> list[torch.Tensor]:
        """The block's K/V per cache, stacked over layers, in :data:`OUTPUT_NAMES` order."""
        return [torch.stack([pair[i] for pair in self.new[c]]) for c in CACHE_ORDER for i in (0, 1)]


class DenoiserPass(nn.Module):
    """One streaming pass of ``model`` with paged history (see the module docstring)."""

    def __init__(self, model: AVTransformer, convention: Convention) -> None:
        super().__init__()
        self.model = model
        self.convention = convention

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        a = dict(zip(INPUT_NAMES, args, strict=True))
        m, conv = self.model, self.convention
        dtype = m.patchify_proj.weight.dtype
        vx = m.patchify_proj(a["video_tokens"].to(dtype))
        ax = m.audio_patchify_proj(a["audio_tokens"].to(dtype))
        b = vx.shape[0]
        sinks = a["sink_rows"].shape[0] if m.config.audio_sink_tokens else 0
        if m.config.audio_sink_tokens:
            rows = m.audio_sink_tokens[0].to(dtype).index_select(0, a["sink_rows"])
            ax = torch.cat([rows[None].expand(b, -1, -1), ax], dim=1)
        # Sinks take the first audio frame's noise level (spec B.4): the pass's one sigma per stream.
        sigma = a["sigma"].reshape(b, 1).to(torch.float32)
        v_mod, v_e, a_mod, a_e, v_cross, a_cross, v_gate, a_gate = m._conditioning(sigma, sigma, conv)
        hook = _PagedHistory(
            {c: (a[f"{c}_k"], a[f"{c}_v"]) for c in CACHE_ORDER},
            {c: a["video_slots"] if c in VIDEO_CACHES else a["audio_slots"] for c in CACHE_ORDER},
        )
        io = _BlockIO(
            video_mod=v_mod, audio_mod=a_mod, video_cross_mod=v_cross, audio_cross_mod=a_cross,
            video_gate_mod=v_gate, audio_gate_mod=a_gate,
            rope=RopeSet(*((a[f"rope_{t}_cos"], a[f"rope_{t}_sin"]) for t in ROPE_TABLES)),
            masks={}, kv=hook,
        )  # fmt: skip
        lt = a["text_mask"].shape[-1]

        def per_stream(t: torch.Tensor) -> list[torch.Tensor]:  # [L, B * Lt, D] -> L x [B, Lt, D]
            return list(t.reshape(t.shape[0], b, lt, t.shape[-1]).unbind(0))

        text = TextContext(
            video_kv=list(zip(per_stream(a["text_video_k"]), per_stream(a["text_video_v"]))),
            audio_kv=list(zip(per_stream(a["text_audio_k"]), per_stream(a["text_audio_v"]))),
            mask=a["text_mask"],
        )
        for blk in m.transformer_blocks:
            vx, ax = blk(vx, ax, text, io, conv)
        ax = ax[:, sinks:]  # sink outputs are never supervised: strip before the head
        video_v = m._head(vx, v_e, m.scale_shift_table, m.proj_out)
        audio_v = m._head(ax, a_e, m.audio_scale_shift_table, m.audio_proj_out)
        video_x0 = AVTransformer.to_x0(a["video_tokens"], video_v, sigma)
        audio_x0 = AVTransformer.to_x0(a["audio_tokens"], audio_v, sigma)
        return (video_x0, audio_x0, *hook.outputs())
