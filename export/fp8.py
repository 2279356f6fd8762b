"""fp8 (e4m3) weight quantization of the attention and FFN linears, and its measured accuracy cost.

Two layouts:

* ``cast``: the release's own fp8 checkpoint layout (checkpoint-format.md section 2): every
  ``to_q`` / ``to_k`` / ``to_v`` / ``to_out.0`` of the six attentions of each block and the video
  FFN (``.ff.net.0.proj`` / ``.ff.net.2``; the official map misses ``audio_ff``) cast to
  ``float8_e4m3fn``, weight *and* bias, no scale. ``model/weights.py`` loads such files as
  :class:`~omniforcing_rt.model.weights.UpcastLinear` (upcast at the matmul). A model that already
  holds fp8 weights is exported in this layout as is.
* ``scaled``: per-output-channel absmax scaling (``w = q * scale``, ``scale = max|w_row| / 448``),
  weight only (biases stay in the activation dtype), covering the audio FFN too. This is what a
  bf16 checkpoint is quantized to by default: plain casting flushes small weights to the e4m3
  subnormal range and costs ~10x the error (see :func:`measure_fp8_error`).

Activations stay in the engine dtype (bf16 on GPU): this is weight-only quantization, halving
weight memory; fp8 GEMMs with activation scaling belong to the TensorRT build (``trt_build.py``).
Quantization is deterministic, so the engine re-applies it to the exported model directory's
source weights and recomputes the same fingerprint (``load.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from omniforcing_rt.errors import ConfigError
from omniforcing_rt.model.transformer import AVTransformer
from omniforcing_rt.model.weights import FP8_DTYPE

__all__ = [
    "FP8_MODES",
    "Fp8Linear",
    "Fp8Report",
    "measure_fp8_error",
    "nmse_and_cosine",
    "quantize_fp8",
]

FP8_MODES = ("scaled", "cast")
"""Quantization layouts (see the module docstring)."""

E4M3_MAX = 448.0
"""Largest finite float8_e4m3fn value."""

_ATTN = r"(attn1|attn2|audio_attn1|audio_attn2|audio_to_video_attn|video_to_audio_attn)\.(to_q|to_k|to_v|to_out\.0)"
_CAST_TARGETS = re.compile(rf"^transformer_blocks\.\d+\.({_ATTN}|ff\.net\.0\.proj|ff\.net\.2)$")
"""Linears the release's fp8 checkpoint casts (the official map's suffix rule)."""
_SCALED_TARGETS = re.compile(rf"^transformer_blocks\.\d+\.({_ATTN}|(audio_)?ff\.net\.0\.proj|(audio_)?ff\.net\.2)$")
"""Linears the ``scaled`` mode quantizes: the cast set plus the audio FFN."""


class Fp8Linear(nn.Module):
    """Linear with an e4m3 weight and a per-output-channel fp32 scale, dequantized at the matmul.

    The bias is either in the activation dtype (``scaled``) or e4m3 too (``cast``, scale 1).
    ``Module.to(dtype)`` leaves the float8 tensors in float8 (plain modules would upcast them,
    since float8 counts as floating point), so a quantized model survives the exporters' casts.
    """

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.weight = nn.Parameter(weight.detach(), requires_grad=False)
        self.weight_scale = nn.Parameter(scale.detach().float(), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear, mode: str = "scaled") -> Fp8Linear:
        """Quantize ``linear``: absmax per output row (``scaled``) or a plain cast (``cast``).

        A linear that already holds an fp8 weight (an fp8 checkpoint) keeps its bits, scale 1.
        """
        w = linear.weight.detach()
        ones = torch.ones(w.shape[0], 1, device=w.device)
        if w.dtype == FP8_DTYPE:
            return cls(w, ones, linear.bias)
        if mode == "cast":
            bias = None if linear.bias is None else linear.bias.detach().to(FP8_DTYPE)
            return cls(w.to(FP8_DTYPE), ones, bias)
        amax = w.float().abs().amax(dim=1, keepdim=True)
        scale = torch.where(amax > 0, amax / E4M3_MAX, torch.ones_like(amax))
        q = (w.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(FP8_DTYPE)
        return cls(q, scale, linear.bias)

    def _apply(self, fn: Any, recurse: bool = True) -> Fp8Linear:
        keep = {n: p.data for n, p in self.named_parameters(recurse=False) if p.dtype == FP8_DTYPE}
        super()._apply(fn, recurse)  # converts in place (param.data = fn(param)) or replaces params
        for name, old in keep.items():
            new = getattr(self, name)
            if new.dtype != FP8_DTYPE:
                new.data = old.to(new.device)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_scale.to(x.dtype)
        return F.linear(x, w, None if self.bias is None else self.bias.to(x.dtype))


def quantize_fp8(model: AVTransformer, mode: str = "scaled") -> int:
    """Quantize ``model``'s attention and FFN linears in place; returns how many were quantized.

    Linears already holding fp8 weights (an fp8 checkpoint, loaded as ``UpcastLinear``) keep
    their bits and become :class:`Fp8Linear` with scale 1, in either mode.
    """
    if mode not in FP8_MODES:
        raise ConfigError("invalid fp8 mode", [f"mode must be one of {FP8_MODES}, got {mode!r}"])
    targets = _CAST_TARGETS if mode == "cast" else _SCALED_TARGETS
    count = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, Fp8Linear):
            count += 1
        elif isinstance(module, nn.Linear) and (targets.match(name) or module.weight.dtype == FP8_DTYPE):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, Fp8Linear.from_linear(module, mode))
            count += 1
    return count


@dataclass(frozen=True)
class Fp8Report:
    """Accuracy of an fp8 model against its bf16 original on one fixed pass."""

    mode: str
    """Quantization layout ('scaled' or 'cast')."""
    quantized_linears: int
    """Linears holding e4m3 weights."""
    nmse: float
    """||fp8 - bf16||^2 / ||bf16||^2 over every output of the pass, concatenated."""
    cosine: float
    """Cosine similarity of the same concatenated outputs."""
    per_output: dict[str, tuple[float, float]]
    """Output name -> (nmse, cosine)."""


def nmse_and_cosine(test: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """Normalised MSE and cosine similarity of ``test`` against ``ref`` (computed in fp64)."""
    a, b = test.detach().double().flatten(), ref.detach().double().flatten()
    nmse = float((a - b).square().sum() / b.square().sum().clamp_min(1e-300))
    cos = float(F.cosine_similarity(a, b, dim=0, eps=1e-300))
    return nmse, cos


def measure_fp8_error(
    model: AVTransformer,
    mode: str = "scaled",
    seed: int = 0,
    graphs: tuple[str, ...] = ("denoise_block", "refresh_block"),
) -> Fp8Report:
    """Quantize a copy of ``model`` and compare passes (``graphs``) against the bf16 model.

    Both run with bf16 activations on CPU on :func:`graphs.example_inputs` of a 2x3-latent
    geometry; the reference is the bf16 model, so only the weight quantization is measured.
    """
    import copy

    from omniforcing_rt.export.graphs import build_module, example_inputs, graph_specs

    from omniforcing_rt.engine_config import EngineConfig
    from omniforcing_rt.model.config import Convention

    conv = Convention.streaming()
    cfg = EngineConfig(dtype="bfloat16", page_size_tokens=8, latent_grid_hw=(2, 3), layout_kind="release",
                       block_frames=3, denoising_step_list=(1000, 0), context_noise=0)  # fmt: skip
    ref_model = copy.deepcopy(model).to(torch.bfloat16).eval()
    q_model = copy.deepcopy(model).eval()
    count = quantize_fp8(q_model, mode)
    q_model.to(torch.bfloat16)
    per: dict[str, tuple[float, float]] = {}
    tests, refs = [], []
    for spec in graph_specs(ref_model, cfg, graphs):
        inputs = example_inputs(spec, ref_model, conv, cfg, seed=seed)
        args = tuple(inputs[n] for n in spec.input_names)
        with torch.no_grad():
            ref = build_module(ref_model, conv, spec)(*args)
            test = build_module(q_model, conv, spec)(*args)
        for name, t, r in zip(spec.output_names, test, ref, strict=True):
            per[f"{spec.name}.{name}"] = nmse_and_cosine(t, r)
            tests.append(t.flatten())
            refs.append(r.flatten())
    nmse, cos = nmse_and_cosine(torch.cat(tests), torch.cat(refs))
    return Fp8Report(mode, count, nmse, cos, per)
