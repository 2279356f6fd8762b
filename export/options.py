"""Options of an export: formats, precision, graphs, and the engine config they are built for."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from omniforcing_rt.export.fp8 import FP8_MODES
from omniforcing_rt.export.graphs import GRAPH_NAMES

from omniforcing_rt.engine_config import EngineConfig
from omniforcing_rt.errors import ConfigError

__all__ = ["FORMATS", "PRECISIONS", "ExportOptions"]

FORMATS = ("aoti", "onnx", "trt")
"""Artefact formats: AOTInductor package (the C++ engine), ONNX graphs, TensorRT engines."""

PRECISIONS = ("fp32", "bf16", "fp8")
"""Weight precisions; fp8 is weight-only (activations in ``fp8_activation_dtype``)."""

_DTYPE = {"fp32": "float32", "bf16": "bfloat16"}


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """What to export and how (``omniforcing-rt export`` flags map one to one)."""

    formats: tuple[str, ...] = ("aoti", "onnx")
    """Formats to write; 'trt' implies 'onnx' (engines are built from the ONNX graphs)."""
    precision: str = "fp32"
    """'fp32', 'bf16' or 'fp8' (e4m3 attention/FFN weights, see export/fp8.py)."""
    fp8_mode: str = "scaled"
    """fp8 layout: 'scaled' (per-channel scales) or 'cast' (the release's fp8 checkpoint layout)."""
    fp8_activation_dtype: str = "bfloat16"
    """Activation dtype of an fp8 export ('float32' is useful on CPU)."""
    device: str = "cpu"
    """Device the artefacts are built for ('cpu' or 'cuda')."""
    page_size_tokens: int = 64
    """KV page size the engine will use (part of the hash)."""
    opset: int = 23
    """ONNX opset; >= 23 so masked attention rows match torch (toolchain.md pitfall 5)."""
    graphs: tuple[str, ...] | None = None
    """ONNX/TensorRT graphs to write (None: all of graphs.GRAPH_NAMES)."""
    progress: bool = True
    """Show a tqdm bar on stderr over the export steps."""
    overwrite: bool = False
    """Replace an existing engine directory."""

    def __post_init__(self) -> None:
        for name in ("formats", "graphs"):
            v = getattr(self, name)
            if isinstance(v, list | str):
                object.__setattr__(self, name, (v,) if isinstance(v, str) else tuple(v))
        if "trt" in self.formats and "onnx" not in self.formats:
            object.__setattr__(self, "formats", (*self.formats, "onnx"))
        self.validate()

    def validate(self) -> None:
        """ConfigError listing every invalid option."""
        p = [f"format {f!r} is not one of {FORMATS}" for f in self.formats if f not in FORMATS]
        if not self.formats:
            p.append("at least one format is needed")
        if self.precision not in PRECISIONS:
            p.append(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.fp8_mode not in FP8_MODES:
            p.append(f"fp8_mode must be one of {FP8_MODES}, got {self.fp8_mode!r}")
        if self.fp8_activation_dtype not in ("float32", "bfloat16", "float16"):
            p.append(f"fp8_activation_dtype must be float32, bfloat16 or float16, got {self.fp8_activation_dtype!r}")
        if self.opset < 23:
            p.append(f"opset must be >= 23 (native Attention op; toolchain.md pitfall 5), got {self.opset}")
        p += [f"graph {g!r} is not one of {GRAPH_NAMES}" for g in self.graphs or () if g not in GRAPH_NAMES]
        if p:
            raise ConfigError("invalid export options", p)

    @property
    def dtype(self) -> str:
        """The engine's activation/KV dtype for this precision."""
        return _DTYPE.get(self.precision, self.fp8_activation_dtype)

    def engine_config(self, base: EngineConfig | None = None) -> EngineConfig:
        """``base`` (default EngineConfig()) with this export's device, dtype and page size."""
        return dataclasses.replace(
            base or EngineConfig(), device=self.device, dtype=self.dtype, page_size_tokens=self.page_size_tokens
        )
