"""TensorRT engines from the exported ONNX graphs (only where TensorRT is installed).

TensorRT cannot be installed on the CPU-only development machine (toolchain.md pitfall 7), so
this module imports ``tensorrt`` lazily and raises :class:`UnsupportedError` without it; its
tests skip with that reason. What it does where TensorRT exists (recipe: export/README.md):

* parses ``onnx/<graph>-<h>.onnx`` with ``trt.OnnxParser`` (external data resolved from the
  graph's folder);
* one optimization profile per graph: the history lengths (``video_slots`` / ``audio_slots``),
  pool pages and text length get min / opt / max from :class:`TrtBuildOptions`; token dims are
  static (one graph per pass shape, see graphs.py);
* precision flags: fp32 none; bf16 ``BF16``; fp8 ``FP8`` + ``BF16`` (the weights are already
  e4m3 in the graph: DequantizeLinear/Cast patterns TensorRT fuses into fp8 GEMMs);
* a timing cache shared by every graph of the directory (``trt/timing-<h>.cache``), so later
  builds skip kernel timing;
* the paged block-causal attention plugin (``export/plugins``, library
  ``libofrt_trt_plugins.so``) is loaded when present, so graphs whose attention was replaced by
  the ``ofrt::PagedBlockCausalAttention`` node (see README) bind to our CUDA kernels.

Engines are written to ``trt/<graph>-<h>.plan``.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omniforcing_rt.export.manifest import ExportManifest

from omniforcing_rt.errors import BackendError, UnsupportedError

__all__ = ["PLUGIN_LIB_ENV", "TrtBuildOptions", "build_engines", "profile_shapes", "require_tensorrt", "run_engine"]

PLUGIN_LIB_ENV = "OFRT_TRT_PLUGIN_LIB"
"""Environment variable naming ``libofrt_trt_plugins.so`` (default: next to export/plugins' build)."""


@dataclass(frozen=True)
class TrtBuildOptions:
    """TensorRT builder settings."""

    precision: str = "fp32"
    """'fp32', 'bf16' or 'fp8' (builder flags, see the module docstring)."""
    max_history_tokens: int = 8192
    """Upper bound of ``video_slots`` / ``audio_slots`` in the profile (window + block 0)."""
    opt_history_tokens: int = 1024
    """The profile's optimum history length."""
    max_pool_pages: int = 4096
    """Upper bound of the pool page dims."""
    max_text_tokens: int = 1024
    """Upper bound of the text length (LTX-2: 1024)."""
    workspace_bytes: int = 8 << 30
    """Builder workspace limit."""
    timing_cache: bool = True
    """Read/write ``trt/timing-<h>.cache``."""


def require_tensorrt() -> Any:
    """``import tensorrt`` or UnsupportedError saying why it cannot be used here."""
    if importlib.util.find_spec("tensorrt") is None:
        raise UnsupportedError(
            "TensorRT engines cannot be built here",
            ["the 'tensorrt' Python package is not installed (see export/README.md, 'TensorRT')"],
        )
    import tensorrt as trt

    return trt


def profile_shapes(name: str, dims: dict[str, list[int | str]], opts: TrtBuildOptions) -> dict[str, tuple[tuple[int, ...], ...]]:  # fmt: skip
    """(min, opt, max) shapes of each input with a dynamic dim (symbolic dims are strings)."""
    bounds = {
        "video_slots": (0, opts.opt_history_tokens, opts.max_history_tokens),
        "audio_slots": (0, opts.opt_history_tokens // 3, opts.max_history_tokens),
        "text_tokens": (1, min(256, opts.max_text_tokens), opts.max_text_tokens),
        "pages": (1, 64, opts.max_pool_pages),
    }
    out = {}
    for inp, shape in dims.items():
        if all(isinstance(d, int) for d in shape):
            continue
        lo, mid, hi = [], [], []
        for d in shape:
            if isinstance(d, int):
                lo.append(d), mid.append(d), hi.append(d)
                continue
            key = inp if inp in ("video_slots", "audio_slots") else ("pages" if "pages" in str(d) else "text_tokens")
            b = bounds[key]
            lo.append(b[0]), mid.append(b[1]), hi.append(b[2])
        out[inp] = (tuple(lo), tuple(mid), tuple(hi))
    del name
    return out


def _load_plugins() -> Path | None:
    lib = os.environ.get(PLUGIN_LIB_ENV)
    path = Path(lib) if lib else Path(__file__).resolve().parent / "plugins" / "build" / "libofrt_trt_plugins.so"
    if not path.is_file():
        return None
    ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)  # registers the plugin creator with TensorRT
    return path


def _onnx_dims(path: Path) -> dict[str, list[int | str]]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}


def _build_one(trt: Any, onnx_path: Path, out: Path, cache: Path | None, opts: TrtBuildOptions) -> None:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BackendError(f"TensorRT could not parse {onnx_path.name}: {errors[:5]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_bytes)
    if opts.precision in ("bf16", "fp8"):
        config.set_flag(trt.BuilderFlag.BF16)
    if opts.precision == "fp8":
        config.set_flag(trt.BuilderFlag.FP8)
    profile = builder.create_optimization_profile()
    for name, (lo, mid, hi) in profile_shapes(onnx_path.stem, _onnx_dims(onnx_path), opts).items():
        profile.set_shape(name, lo, mid, hi)
    config.add_optimization_profile(profile)
    timing = config.create_timing_cache(cache.read_bytes() if cache is not None and cache.exists() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BackendError(f"TensorRT failed to build {onnx_path.name}")
    out.write_bytes(bytes(plan))
    if cache is not None:
        cache.write_bytes(bytes(config.get_timing_cache().serialize()))


def build_engines(root: Path, graphs: list[str], config_hash: str, opts: TrtBuildOptions, progress: Any = None) -> list[Path]:  # fmt: skip
    """Build ``trt/<graph>-<h>.plan`` for each graph from its ONNX file; returns the files."""
    trt = require_tensorrt()
    if not torch.cuda.is_available():
        raise UnsupportedError("TensorRT engines need a CUDA device", ["torch.cuda.is_available() is False"])
    _load_plugins()
    out_dir = Path(root) / "trt"
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = out_dir / f"timing-{config_hash}.cache" if opts.timing_cache else None
    written = []
    for g in graphs:
        if progress is not None:
            progress.set_postfix_str(f"TensorRT {g}")
        out = out_dir / f"{g}-{config_hash}.plan"
        _build_one(trt, Path(root) / "onnx" / f"{g}-{config_hash}.onnx", out, cache, opts)
        written.append(out)
        if progress is not None:
            progress.update(1)
    return written + ([cache] if cache is not None and cache.exists() else [])


def run_engine(plan: Path, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Run a serialized engine on CUDA tensors (inputs the engine lacks are ignored)."""
    trt = require_tensorrt()
    _load_plugins()
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan.read_bytes())
    ctx = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    outs: dict[str, torch.Tensor] = {}
    for n in names:
        if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT:
            t = inputs[n].contiguous()
            ctx.set_input_shape(n, tuple(t.shape))
            ctx.set_tensor_address(n, t.data_ptr())
    for n in names:
        if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT:
            dt = {trt.float32: torch.float32, trt.bfloat16: torch.bfloat16, trt.float16: torch.float16}[
                engine.get_tensor_dtype(n)
            ]
            outs[n] = torch.empty(tuple(ctx.get_tensor_shape(n)), dtype=dt, device="cuda")
            ctx.set_tensor_address(n, outs[n].data_ptr())
    if not ctx.execute_async_v3(torch.cuda.current_stream().cuda_stream):
        raise BackendError(f"TensorRT execution of {plan.name} failed")
    torch.cuda.synchronize()
    return outs


def engines_of(manifest: ExportManifest) -> list[str]:
    """Paths of the TensorRT engines listed in a manifest."""
    return [a.path for a in manifest.artefacts if a.kind == "trt-engine"]
