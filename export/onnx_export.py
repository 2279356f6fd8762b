"""ONNX export of the per-pass graphs and the text K/V pass (``torch.onnx.export(dynamo=True)``).

Why these settings:

* opset >= 23: the native ``Attention`` op returns 0 for fully masked rows, as torch does; the
  default opset 20 returns mean(V) there (toolchain.md pitfall 5).
* ``optimize=False``: the onnxscript optimizer constant-folds ``fp8_weight.to(bf16) * scale`` into
  a dequantized fp32/bf16 initializer, which would silently undo fp8 weight storage. onnxruntime
  and TensorRT run their own graph optimizations at load anyway.
* dynamic dims are the history lengths, pool pages and text length only; no dim is a sum of two
  ``Dim``s (pitfall 6): the concatenated history + block length is derived inside the graph.
* ``graphs.ort_compatible_masks`` is active while tracing (onnxruntime's Attention kernel does not
  broadcast a mask over queries).
* node stack traces are dropped (they name local source paths; see ``_strip_source_locations``).
* Models over ~1.5 GB of weights are saved with external data (protobuf's 2 GB limit); the data
  file sits next to the graph and is listed in the manifest like any artefact.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from omniforcing_rt.export.graphs import (
    GraphSpec,
    build_module,
    dynamic_shapes,
    example_inputs,
    onnx_output_name,
    ort_compatible_masks,
)

from omniforcing_rt.engine_config import EngineConfig
from omniforcing_rt.errors import BackendError
from omniforcing_rt.model.config import Convention
from omniforcing_rt.model.transformer import AVTransformer

__all__ = ["EXTERNAL_DATA_BYTES", "export_onnx_graph", "onnx_input_names"]

log = logging.getLogger(__name__)

EXTERNAL_DATA_BYTES = 1_500_000_000
"""Weights above this size are saved as external data (protobuf messages are capped at 2 GB)."""


def export_onnx_graph(
    model: AVTransformer, convention: Convention, config: EngineConfig, spec: GraphSpec, path: Path, opset: int = 23
) -> list[Path]:
    """Export ``spec`` over ``model`` (already in the config's dtype/device) to ``path``.

    Returns the files written (the graph, plus its external data file for large models).
    """
    module = build_module(model, convention, spec)
    inputs = example_inputs(spec, model, convention, config)
    args = tuple(inputs[n] for n in spec.input_names)
    ds = dynamic_shapes(spec)
    shapes = ds if spec.kind == "text" else (ds,)
    big = sum(p.numel() * p.element_size() for p in model.parameters()) > EXTERNAL_DATA_BYTES
    path.parent.mkdir(parents=True, exist_ok=True)
    quiet = logging.getLogger("torch.onnx._internal.exporter._registration")  # "torchvision is not installed"
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    with warnings.catch_warnings(), ort_compatible_masks(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            prog = torch.onnx.export(
                module, args, dynamo=True, opset_version=opset, dynamic_shapes=shapes,
                input_names=list(spec.input_names), output_names=[onnx_output_name(n, spec.input_names) for n in spec.output_names],
                optimize=False, verbose=False,
            )  # fmt: skip
        except Exception as e:  # the exporter raises many types (ConversionError, TorchExportError, ...)
            raise BackendError(f"ONNX export of {spec.name} failed: {type(e).__name__}: {e}") from e
        finally:
            quiet.setLevel(level)
    assert prog is not None
    _strip_source_locations(prog)
    prog.save(str(path), external_data=big)
    written = [path]
    if big:
        written += sorted(p for p in path.parent.glob(path.name + "*") if p != path)
    log.debug("wrote %s (%d files)", path, len(written))
    return written


def _strip_source_locations(prog: object) -> None:
    """Drop each node's Python stack trace: it names files of this checkout (so the artefact's
    sha256 would depend on where the repository lives) and is ~85 % of a small model's graph."""
    for node in prog.model.graph.all_nodes():  # type: ignore[attr-defined]
        node.metadata_props.pop("pkg.torch.onnx.stack_trace", None)


def onnx_input_names(path: Path) -> list[str]:
    """The graph inputs of an ONNX file (the exporter drops inputs a variant does not read)."""
    import onnx

    return [i.name for i in onnx.load(str(path), load_external_data=False).graph.input]
