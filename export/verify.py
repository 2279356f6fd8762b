"""``verify-export``: run an engine directory's artefacts against the PyTorch reference.

Every graph runs on fixed inputs (``graphs.example_inputs`` with fixed seeds, at two history
lengths so the dynamic dims are exercised) in each available backend:

* ``onnxruntime`` for every ONNX graph (CUDA provider for a CUDA export where available, else
  CPU; the CPU provider has no bf16 GEMM kernels, so bf16 graphs are ``skipped`` there);
* ``aoti`` for the AOTInductor package (the C++ engine's graph, loaded through
  ``torch._inductor.aoti_load_package``), compared on every output of the full pass;
* ``tensorrt`` for TensorRT engines, only where ``tensorrt`` imports and CUDA is present
  (otherwise a ``skipped`` row says why).

The reference is the directory's own model copy (fp8 re-applied), in the export's dtype, running
the eager modules. Each output gets one row with max |backend - reference|; a row fails when it
exceeds ``atol + rtol * max|reference|`` (:data:`TOLERANCES`), or when the backend could not run
the artefact at all.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omniforcing_rt.export.graphs import GraphSpec, build_module, example_inputs, graph_specs
from omniforcing_rt.export.load import LoadedExport, load_export

from omniforcing_rt.compile.denoiser_pass import INPUT_NAMES, OUTPUT_NAMES

__all__ = ["TOLERANCES", "VerifyRow", "format_rows", "verify_export"]

TOLERANCES = {"float32": (1e-4, 1e-4), "float16": (5e-3, 5e-3), "bfloat16": (3e-2, 3e-2)}
"""dtype -> (atol, rtol against max|reference|). fp32: backends differ only in GEMM/softmax
summation order, measured <= 5e-7 on the tiny model; 1e-4 leaves 200x headroom and still catches
any wrong op, whose errors are O(0.1). bf16 has an 8-bit mantissa: one ulp at |x| = 4 is 3e-2,
and ORT upcasts some ops where torch does not, so a few ulps of difference are expected. fp16
has 11 bits: 5e-3."""

_MASK_LIKE = 1e4
"""Magnitudes above this (additive-mask fill values) count as this much in the relative tolerance."""

_CASES = (0, 1)
"""Input cases per graph: 0 = the export's example history, 1 = empty / longer history."""


@dataclass(frozen=True)
class VerifyRow:
    """One output of one graph in one backend on one input case."""

    graph: str
    """Graph name (or 'aoti' for the package)."""
    backend: str
    """'onnxruntime', 'aoti' or 'tensorrt'."""
    case: int
    """Input case (see _CASES)."""
    output: str
    """Output name ('-' when the backend could not run)."""
    max_abs_diff: float | None
    """max |backend - reference| (None when not run)."""
    tolerance: float | None
    """atol + rtol * max|reference|."""
    status: str
    """'ok', 'FAIL', 'ERROR' (backend could not run) or 'skipped'."""
    note: str = ""
    """Why a row errored or was skipped."""


def _case_inputs(spec: GraphSpec, ex: LoadedExport, model: Any, case: int) -> dict[str, torch.Tensor]:
    ps = ex.config.page_size_tokens
    conv = ex.loaded.stream.convention
    if spec.kind == "text":
        return example_inputs(spec, model, conv, ex.config, seed=case, text_tokens=6 + 5 * case)
    history = (13, 5) if case == 0 else ((0, 0) if spec.name.endswith("block0") else (3 * ps - 1, ps + 1))
    return example_inputs(spec, model, conv, ex.config, seed=case, history=history)


def _compare(graph: str, backend: str, case: int, names: list[str], outs: list[Any], refs: tuple, dtype: str) -> list[VerifyRow]:  # fmt: skip
    atol, rtol = TOLERANCES[dtype]
    rows = []
    for name, out, ref in zip(names, outs, refs, strict=True):
        r = ref.detach().float().cpu()
        o = (
            torch.as_tensor(np.asarray(out, dtype=np.float32))
            if not isinstance(out, torch.Tensor)
            else out.float().cpu()
        )
        if tuple(o.shape) != tuple(r.shape):
            rows.append(
                VerifyRow(graph, backend, case, name, None, None, "FAIL", f"shape {tuple(o.shape)} != {tuple(r.shape)}")
            )
            continue
        diff = float((o - r).abs().max()) if r.numel() else 0.0
        # -finfo.max mask entries stand for -inf: they must not widen the tolerance of the rest.
        tol = atol + rtol * (float(r.abs().clamp(max=_MASK_LIKE).max()) if r.numel() else 0.0)
        rows.append(VerifyRow(graph, backend, case, name, diff, tol, "ok" if diff <= tol else "FAIL"))
    return rows


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.cpu().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.cpu().numpy()


def _verify_onnx(ex: LoadedExport, model: Any, spec: GraphSpec) -> list[VerifyRow]:
    import onnxruntime as ort

    art = ex.manifest.artefact("onnx", spec.name)
    if art is None:
        return []
    providers = [p for p in ("CUDAExecutionProvider",) if ex.config.device.startswith("cuda")
                 and p in ort.get_available_providers()] + ["CPUExecutionProvider"]  # fmt: skip
    if ex.config.dtype == "bfloat16" and providers == ["CPUExecutionProvider"]:
        why = "onnxruntime's CPU provider has no bf16 Gemm/MatMul kernels; verify on a CUDA device"
        return [VerifyRow(spec.name, "onnxruntime", 0, "-", None, None, "skipped", why)]
    try:
        sess = ort.InferenceSession(str(ex.root / art.path), providers=providers)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        return [VerifyRow(spec.name, "onnxruntime", 0, "-", None, None, "ERROR", f"{type(e).__name__}: {e}"[:300])]
    names = [o.name for o in sess.get_outputs()]
    wanted = {i.name for i in sess.get_inputs()}
    module = build_module(model, ex.loaded.stream.convention, spec)
    rows = []
    for case in _CASES:
        inputs = _case_inputs(spec, ex, model, case)
        with torch.no_grad():
            refs = module(*(inputs[n] for n in spec.input_names))
        try:
            outs = sess.run(None, {n: _to_numpy(t) for n, t in inputs.items() if n in wanted})
        except Exception as e:
            rows.append(
                VerifyRow(spec.name, "onnxruntime", case, "-", None, None, "ERROR", f"{type(e).__name__}: {e}"[:300])
            )
            continue
        rows += _compare(spec.name, "onnxruntime", case, names, outs, refs, ex.config.dtype)
    return rows


def _verify_aoti(ex: LoadedExport, model: Any) -> list[VerifyRow]:
    art = ex.manifest.artefact("aoti-package")
    if art is None:
        return []
    try:
        runner = torch._inductor.aoti_load_package(str(ex.root / art.path))
    except Exception as e:  # a damaged or foreign package
        return [VerifyRow("aoti", "aoti", 0, "-", None, None, "ERROR", f"{type(e).__name__}: {e}"[:300])]
    rows = []
    for case, spec in enumerate(graph_specs(model, ex.config, ("denoise_block0", "denoise_block"))):
        full = GraphSpec(
            "aoti", "pass", spec.video_tokens, spec.audio_tokens, spec.sink_tokens, INPUT_NAMES, OUTPUT_NAMES
        )
        inputs = _case_inputs(full, ex, model, case)
        args = [inputs[n] for n in INPUT_NAMES]
        with torch.no_grad():
            refs = build_module(model, ex.loaded.stream.convention, full)(*args)
            outs = runner(*args)
        rows += _compare("aoti", "aoti", case, list(OUTPUT_NAMES), list(outs), refs, ex.config.dtype)
    return rows


def _verify_trt(ex: LoadedExport, model: Any, spec: GraphSpec) -> list[VerifyRow]:
    art = ex.manifest.artefact("trt-engine", spec.name)
    if art is None:
        return []
    if importlib.util.find_spec("tensorrt") is None or not torch.cuda.is_available():
        why = "tensorrt is not importable" if importlib.util.find_spec("tensorrt") is None else "no CUDA device"
        return [VerifyRow(spec.name, "tensorrt", 0, "-", None, None, "skipped", why)]
    from omniforcing_rt.export.trt_build import run_engine

    rows = []
    module = build_module(model, ex.loaded.stream.convention, spec)
    for case in _CASES:
        inputs = {k: v.cuda() for k, v in _case_inputs(spec, ex, model, case).items()}
        with torch.no_grad():
            refs = module.cuda()(*(inputs[n] for n in spec.input_names))
        outs = run_engine(ex.root / art.path, inputs)
        rows += _compare(spec.name, "tensorrt", case, list(outs), list(outs.values()), refs, ex.config.dtype)
    return rows


def verify_export(root: str | Path, graphs: tuple[str, ...] | None = None) -> list[VerifyRow]:
    """Check the directory (artefact hashes, model hash) and compare every backend (module docstring).

    Raises CheckpointError / ConfigError as :func:`load.load_export` does, before running anything.
    """
    ex = load_export(root, need_aoti=False)
    model = ex.loaded.model.to(device=torch.device(ex.config.device), dtype=_dtype(ex.config.dtype)).eval()
    names = [g for g in ex.manifest.graphs if graphs is None or g in graphs]
    rows = _verify_aoti(ex, model) if graphs is None or "aoti" in graphs else []
    for spec in graph_specs(model, ex.config, tuple(names)) if names else []:
        rows += _verify_onnx(ex, model, spec)
        rows += _verify_trt(ex, model, spec)
    return rows


def format_rows(rows: list[VerifyRow]) -> str:
    """A fixed-width table of the rows (the CLI prints it)."""
    lines = [f"{'graph':<16} {'backend':<12} {'case':>4} {'output':<16} {'max|diff|':>11} {'tolerance':>11}  status"]
    for r in rows:
        d = "-" if r.max_abs_diff is None else f"{r.max_abs_diff:.3e}"
        t = "-" if r.tolerance is None else f"{r.tolerance:.3e}"
        lines.append(f"{r.graph:<16} {r.backend:<12} {r.case:>4} {r.output:<16} {d:>11} {t:>11}  {r.status}"
                     + (f"  ({r.note})" if r.note else ""))  # fmt: skip
    return "\n".join(lines)


def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
