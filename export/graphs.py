"""The graphs an export writes: per-pass variants of the denoiser and the text K/V pass.

The AOTInductor package keeps one fully dynamic graph (``compile/denoiser_pass.py``): the C++
engine feeds it every pass. Runtimes built around static engines (ONNX Runtime sessions,
TensorRT engines, CUDA graphs) prefer one graph per pass *shape*, so the ONNX/TensorRT export
splits the pass into variants:

* ``denoise_block0`` / ``denoise_block``: a denoising pass over block 0 (with the model's audio
  sink tokens) or over a standard block; outputs only ``video_x0`` / ``audio_x0``.
* ``refresh_block0`` / ``refresh_block``: the context-refresh pass (same inputs); outputs only the
  block's own K/V per temporal cache, which the engine appends to the block's pages.
* ``text_kv``: caption features -> every layer's text K/V and the additive text mask, once per
  prompt (``AVTransformer.encode_text`` with the four caches stacked over layers).

Token counts are fixed per variant (taken from the stream geometry of the resolved
:class:`~omniforcing_rt.engine_config.EngineConfig`); what stays dynamic is what changes between
streams and blocks: the history lengths (``video_slots`` / ``audio_slots``, the page table in
slot form: ``page * page_size + offset`` per history token) and the pool page counts. The text
length is dynamic too. Output names of the block K/V carry a ``new_`` prefix because ONNX forbids
an output named like an input (``video_self_k`` is both the pool and the block's keys).

Inputs of every graph are deterministic functions of a seed (:func:`example_inputs`), so the
verifier and the tests compare backends on the same fixed tensors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.export import Dim

from omniforcing_rt.compile.denoiser_pass import (
    CACHE_ORDER,
    INPUT_NAMES,
    OUTPUT_NAMES,
    VIDEO_CACHES,
    DenoiserPass,
)
from omniforcing_rt.compile.export import example_pass_inputs
from omniforcing_rt.engine_config import EngineConfig
from omniforcing_rt.errors import ConfigError
from omniforcing_rt.model import attention as _attention
from omniforcing_rt.model.config import Convention
from omniforcing_rt.model.transformer import AVTransformer
from omniforcing_rt.pipeline.layout import BlockLayout

__all__ = [
    "GRAPH_NAMES",
    "TEXT_INPUTS",
    "TEXT_OUTPUTS",
    "GraphSpec",
    "PassGraph",
    "TextKVGraph",
    "build_module",
    "dynamic_shapes",
    "example_inputs",
    "graph_specs",
    "onnx_output_name",
    "ort_compatible_masks",
]

GRAPH_NAMES = ("denoise_block0", "denoise_block", "refresh_block0", "refresh_block", "text_kv")
"""Every graph an ONNX/TensorRT export can hold, in export order."""

TEXT_INPUTS = ("video_context", "audio_context", "attention_mask")
"""Inputs of ``text_kv``: caption features [1, Lt, C] x2 and the int64 mask [1, Lt] (1 valid)."""

TEXT_OUTPUTS = ("text_video_k", "text_video_v", "text_audio_k", "text_audio_v", "text_mask")
"""Outputs of ``text_kv``, named and shaped exactly as the pass inputs they feed."""

_X0_OUTPUTS = OUTPUT_NAMES[:2]
_KV_OUTPUTS = OUTPUT_NAMES[2:]
_PROBE_BLOCKS = 24
"""Blocks inspected to find the standard block's token counts (they must not vary)."""


@dataclass(frozen=True)
class GraphSpec:
    """One exported graph: its role, fixed geometry and I/O names."""

    name: str
    """One of :data:`GRAPH_NAMES`."""
    kind: str
    """'denoise', 'refresh' or 'text'."""
    video_tokens: int = 0
    """Video tokens of the pass (0 for ``text_kv``)."""
    audio_tokens: int = 0
    """Audio tokens of the pass, sinks excluded."""
    sink_tokens: int = 0
    """Audio sink tokens prepended in this pass (block 0 of a model with sinks)."""
    input_names: tuple[str, ...] = ()
    """Graph inputs in positional order."""
    output_names: tuple[str, ...] = ()
    """Graph outputs in order, as the reference module returns them."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description for the manifest."""
        return {
            "kind": self.kind, "video_tokens": self.video_tokens, "audio_tokens": self.audio_tokens,
            "sink_tokens": self.sink_tokens, "inputs": list(self.input_names),
            "outputs": [onnx_output_name(n, self.input_names) for n in self.output_names],
        }  # fmt: skip


def onnx_output_name(name: str, inputs: tuple[str, ...] = INPUT_NAMES) -> str:
    """The graph's name for an output: one named like an input of the graph gets ``new_``
    (ONNX forbids the clash; the pass's block K/V outputs share the pools' names)."""
    return f"new_{name}" if name in inputs else name


def graph_specs(model: AVTransformer, config: EngineConfig, names: tuple[str, ...] | None = None) -> list[GraphSpec]:
    """The specs of ``names`` (default: all of :data:`GRAPH_NAMES`) for a resolved config."""
    unknown = sorted(set(names or ()) - set(GRAPH_NAMES))
    if unknown:
        raise ConfigError("unknown graph names", [f"{n!r} is not one of {GRAPH_NAMES}" for n in unknown])
    if not config.resolved or config.latent_grid_hw is None or config.block_frames is None:
        raise ConfigError("graph specs need a resolved EngineConfig (EngineConfig.resolve(stream))")
    hw = config.latent_grid_hw
    layout = BlockLayout.create(
        config.layout_kind or "release", _PROBE_BLOCKS, hw[0] * hw[1], block_frames=config.block_frames,
        first_block_frames=config.first_block_frames, audio_sink_tokens=model.config.audio_sink_tokens,
    )  # fmt: skip
    first, rest = layout.block(0), layout.blocks[1:]
    shapes = {(b.video_tokens, b.audio_tokens) for b in rest}
    if len(shapes) != 1:
        raise ConfigError(
            "standard blocks of this geometry differ in token counts, so no fixed-shape pass graph fits",
            [f"block_frames={config.block_frames} gives (video, audio) tokens {sorted(shapes)}; use block_frames=3"],
        )
    ((tv, ta),) = shapes
    out = []
    for name in names or GRAPH_NAMES:
        if name == "text_kv":
            out.append(GraphSpec(name, "text", input_names=TEXT_INPUTS, output_names=TEXT_OUTPUTS))
            continue
        kind = name.split("_")[0]
        block0 = name.endswith("block0")
        outputs = _X0_OUTPUTS if kind == "denoise" else _KV_OUTPUTS
        vt, at = (first.video_tokens, first.audio_tokens - first.sink_tokens) if block0 else (tv, ta)
        sinks = first.sink_tokens if block0 else 0
        out.append(GraphSpec(name, kind, vt, at, sinks, INPUT_NAMES, outputs))
    return out


class PassGraph(nn.Module):
    """:class:`DenoiserPass` restricted to the outputs of one variant."""

    def __init__(self, model: AVTransformer, convention: Convention, spec: GraphSpec) -> None:
        super().__init__()
        self.inner = DenoiserPass(model, convention)
        self.keep = [OUTPUT_NAMES.index(n) for n in spec.output_names]

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = self.inner(*args)
        return tuple(outs[i] for i in self.keep)


class TextKVGraph(nn.Module):
    """``AVTransformer.encode_text`` with per-layer K/V stacked to the pass's [L, Lt, D] inputs."""

    def __init__(self, model: AVTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, video_context: torch.Tensor, audio_context: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        text = self.model.encode_text(video_context, audio_context, attention_mask)
        assert text.mask is not None  # a mask was given
        stack = [torch.stack([pair[i][0] for pair in kv]) for kv in (text.video_kv, text.audio_kv) for i in (0, 1)]
        return (*stack, text.mask)


def build_module(model: AVTransformer, convention: Convention, spec: GraphSpec) -> nn.Module:
    """The eval-mode module of ``spec`` over ``model`` (shared, not copied)."""
    module = TextKVGraph(model) if spec.kind == "text" else PassGraph(model, convention, spec)
    return module.eval()


def example_inputs(
    spec: GraphSpec, model: AVTransformer, convention: Convention, config: EngineConfig, seed: int = 0,
    history: tuple[int, int] = (13, 5), text_tokens: int = 6,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """Deterministic inputs of ``spec`` (float tensors in the config's dtype, sigma fp32).

    ``history`` = (video, audio) history tokens; pools get just enough pages plus one spare.
    The text mask pads the first two tokens, so masking is exercised.
    """
    gen = torch.Generator().manual_seed(seed)
    cfg, dt = model.config, _dtype(config)
    if spec.kind == "text":
        mask = torch.ones(1, text_tokens, dtype=torch.int64)
        mask[:, : min(2, text_tokens - 1)] = 0
        ex = {
            "video_context": torch.randn(1, text_tokens, cfg.caption_channels, generator=gen),
            "audio_context": torch.randn(1, text_tokens, cfg.caption_channels, generator=gen),
            "attention_mask": mask,
        }
        return {k: (v.to(dt) if v.is_floating_point() else v) for k, v in ex.items()}
    ex = example_pass_inputs(
        model, convention, config, tokens=(spec.video_tokens, spec.audio_tokens), sinks=spec.sink_tokens,
        history=history, pages=(1, 1), text_tokens=text_tokens, batch=1,
        sigma=0.7 if spec.kind == "denoise" else 0.0, generator=gen,
    )  # fmt: skip
    ex["text_mask"][..., :2] = torch.finfo(dt).min  # pad the first two text tokens: masking is exercised
    return ex


def dynamic_shapes(spec: GraphSpec) -> tuple[dict[int, Any] | None, ...]:
    """``torch.export`` dynamic shapes: history, pool pages and text length (see module docstring)."""
    lt = Dim("text_tokens", min=1)
    if spec.kind == "text":
        return ({1: lt}, {1: lt}, {1: lt})
    hv, ha = Dim("video_history", min=0), Dim("audio_history", min=0)
    pv, pa = Dim("video_pages", min=1), Dim("audio_pages", min=1)
    ds: dict[str, dict[int, Any] | None] = dict.fromkeys(INPUT_NAMES)
    ds["video_slots"], ds["audio_slots"], ds["text_mask"] = {0: hv}, {0: ha}, {3: lt}
    for m in ("video", "audio"):
        ds[f"text_{m}_k"] = ds[f"text_{m}_v"] = {1: lt}
    for c in CACHE_ORDER:
        ds[f"{c}_k"] = ds[f"{c}_v"] = {1: pv if c in VIDEO_CACHES else pa}
    return tuple(ds[n] for n in INPUT_NAMES)


@contextlib.contextmanager
def ort_compatible_masks() -> Iterator[None]:
    """Broadcast text masks over the query axis while exporting to ONNX.

    The ONNX ``Attention`` op (opset 23) allows a mask broadcast over queries ([.., 1, Lt]), but
    onnxruntime 1.32's CPU kernel rejects it ("inconsistent q_sequence_length (between attn_mask
    and Q)"). Expanding to [.., Tq, Lt] is the same function, so the exported graph does that.
    """
    original = _attention.sdpa

    def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is not None and mask.ndim == 4 and mask.shape[-2] == 1:
            mask = mask.expand(mask.shape[0], mask.shape[1], q.shape[1], mask.shape[3])
        return original(q, k, v, heads, mask)

    _attention.sdpa = sdpa
    try:
        yield
    finally:
        _attention.sdpa = original


def _dtype(config: EngineConfig) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[config.dtype]
