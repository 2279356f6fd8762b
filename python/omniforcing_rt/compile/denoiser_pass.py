"""One denoiser pass of the streaming student as a self-contained, exportable module.

The C++ engine (``csrc/runtime/engine.cc``) owns the streaming state; what it needs from the model
is one function: a transformer pass over one block's tokens, given the block's history in the
paged KV pool. :class:`DenoiserPass` is that function with every piece of state as an explicit
tensor input, so ``torch.export`` captures it once and AOTInductor compiles it into a ``.pt2``
package that ``torch::inductor::AOTIModelPackageLoader`` runs from C++.

Inputs, in :data:`INPUT_NAMES` order (L layers, ps page size; ``Dv``/``Da`` video/audio widths,
``Dx`` the A<->V inner dim; S = sink rows, 0 except block 0 of a model with sinks)::

    video_tokens            [1, Tv, Cv]     patchified video latents at the pass's noise level
    audio_tokens            [1, Ta, Ca]     audio latents (sinks excluded)
    sink_rows               [S] int64       rows of the model's sink tokens to prepend (arange(S))
    sigma                   [1] float32     noise level of every token of the pass
    rope_<table>_{cos,sin}  the four rotary tables of ``AVTransformer.rope`` (video, audio,
                            video_cross, audio_cross; audio tables carry S identity rows first),
                            interleaved [1, T, D] or split [1, H, T, D / 2H]; computed once per
                            block by the engine (csrc/runtime/engine_rope.cc)
    text_{video,audio}_{k,v} [L, Lt, D]     per-prompt text K/V
    text_mask               [1, 1, 1, Lt]   additive text mask (0 valid, -max padding)
    {video_self,v2a}_{k,v}  [L, Pv, ps, D]  the video-token page pools (K after norm + RoPE)
    {audio_self,a2v}_{k,v}  [L, Pa, ps, D]  the audio-token page pools
    video_slots             [Hv] int64      pool slots (page * ps + offset) of the block's video
                                            history in token order (rewritten only at commit)
    audio_slots             [Ha] int64      same for audio history

Outputs, in :data:`OUTPUT_NAMES` order: ``video_x0`` [1, Tv, Cv] and ``audio_x0`` [1, Ta, Ca]
(x0 = x - sigma * v in fp32, as ``AVTransformer.to_x0``), then the block's own K/V per temporal
cache stacked over layers: video_self [L, Tv, Dv], v2a [L, Tv, Dx], audio_self [L, S + Ta, Da],
a2v [L, S + Ta, Dx].

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
* The noise level is one scalar per pass, so the six AdaLN MLPs run on one row and broadcast.
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
        self.new[name].append((k[0], v[0]))
        pool_k, pool_v = self.pools[name]
        slots = self.slots[name]
        hist_k = pool_k[layer].reshape(-1, pool_k.shape[-1]).index_select(0, slots)
        hist_v = pool_v[layer].reshape(-1, pool_v.shape[-1]).index_select(0, slots)
        return torch.cat([hist_k, k[0]], dim=0)[None], torch.cat([hist_v, v[0]], dim=0)[None]

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
        sinks = a["sink_rows"].shape[0] if m.config.audio_sink_tokens else 0
        if m.config.audio_sink_tokens:
            rows = m.audio_sink_tokens[0].to(dtype).index_select(0, a["sink_rows"])
            ax = torch.cat([rows[None], ax], dim=1)
        # Sinks take the first audio frame's noise level (spec B.4): the pass's one sigma.
        sigma = a["sigma"].reshape(1, 1).to(torch.float32)
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
        text = TextContext(
            video_kv=list(zip(a["text_video_k"][:, None].unbind(0), a["text_video_v"][:, None].unbind(0))),
            audio_kv=list(zip(a["text_audio_k"][:, None].unbind(0), a["text_audio_v"][:, None].unbind(0))),
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
