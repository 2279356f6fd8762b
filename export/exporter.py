"""``export_engine``: write an engine directory (model copy, AOTI package, ONNX graphs, TRT engines).

Directory layout (``<h>`` = the export's ``config_hash``)::

    DIR/export.json                       the manifest (export/manifest.py)
    DIR/model/model.json                  the source model's geometry and sampling defaults
    DIR/model/transformer.safetensors     the source weights (fp8 is re-applied at load: fp8.py)
    DIR/aoti/denoiser-<h>.pt2             AOTInductor package run by the C++ engine
    DIR/aoti/manifest.json                its engine manifest (csrc/include/ofrt/config.h)
    DIR/onnx/<graph>-<h>.onnx             one per graph of graphs.GRAPH_NAMES
    DIR/trt/<graph>-<h>.plan              TensorRT engines (only where TensorRT is installed)

The directory is assembled in a hidden sibling and renamed into place at the end, so a failed or
interrupted export never leaves a directory that looks complete. The model copy makes the
directory self-contained: the engine needs the transformer in eager PyTorch for per-prompt text
K/V and the model's stream defaults, and the verifier needs a reference.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from omniforcing_rt.export.fp8 import quantize_fp8
from omniforcing_rt.export.graphs import GRAPH_NAMES, graph_specs
from omniforcing_rt.export.manifest import (
    ExportManifest,
    export_hash,
    make_artefact,
    tool_versions,
)
from omniforcing_rt.export.options import ExportOptions
from omniforcing_rt.export.source import SourceOptions, model_info_for_copy, resolve_source
from tqdm import tqdm

from omniforcing_rt.compile.export import model_fingerprint
from omniforcing_rt.engine_config import EngineConfig
from omniforcing_rt.errors import ConfigError, UnsupportedError
from omniforcing_rt.model.transformer import AVTransformer
from omniforcing_rt.models import LoadedModel, write_model_dir

__all__ = ["MODEL_DIR", "export_engine", "prepare_model"]

MODEL_DIR = "model"
"""Sub-directory holding the model copy."""


def prepare_model(model: AVTransformer, precision: str, fp8_mode: str | None) -> AVTransformer:
    """A copy of ``model`` as exported: fp8-quantized for precision 'fp8', else unchanged.

    Its fingerprint (``compile.export.model_fingerprint``) enters the hashes; the cast to the
    engine dtype happens later and is covered by the dtype in the hash.
    """
    out = copy.deepcopy(model).eval()
    if precision == "fp8":
        quantize_fp8(out, fp8_mode or "scaled")
    return out


def _steps(options: ExportOptions, graphs: tuple[str, ...]) -> list[str]:
    steps = ["model"]
    if "aoti" in options.formats:
        steps.append("aoti")
    if "onnx" in options.formats:
        steps += [f"onnx:{g}" for g in graphs]
    if "trt" in options.formats:
        steps += [f"trt:{g}" for g in graphs]
    return steps


def export_engine(
    source: Any, out_dir: str | Path, options: ExportOptions | None = None, config: EngineConfig | None = None,
    source_options: SourceOptions | None = None,
) -> ExportManifest:  # fmt: skip
    """Export ``source`` (see export/source.py) into the engine directory ``out_dir``.

    ``config`` supplies the stream geometry and sampling (None: the model's own); its device,
    dtype and page size are replaced by ``options``'. Returns the written manifest.

    Raises:
        ConfigError: invalid options, an existing ``out_dir`` without ``overwrite``, a geometry
            the fixed-shape graphs cannot serve.
        CheckpointError: an unreadable source.
        UnsupportedError: 'trt' without TensorRT, CUDA without a GPU.
        BackendError: a graph failed to export or compile.
    """
    opts = options or ExportOptions()
    if "trt" in opts.formats:  # fail before minutes of AOTI/ONNX work, not after
        from omniforcing_rt.export.trt_build import require_tensorrt

        require_tensorrt()
        if not torch.cuda.is_available():
            raise UnsupportedError("TensorRT engines need a CUDA device", ["torch.cuda.is_available() is False"])
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not opts.overwrite:
        raise ConfigError(f"{out} exists and is not empty", ["pass overwrite=True (--overwrite) to replace it"])
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        loaded = resolve_source(source, stage / ".work", source_options)
        manifest = _export_into(loaded, stage, opts, config)
        shutil.rmtree(stage / ".work", ignore_errors=True)
        if out.exists():
            shutil.rmtree(out)
        stage.rename(out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return manifest


def _export_into(loaded: LoadedModel, root: Path, opts: ExportOptions, config: EngineConfig | None) -> ExportManifest:
    conv = loaded.stream.convention
    cfg = opts.engine_config(config).resolve(loaded.stream)
    fp8_mode = opts.fp8_mode if opts.precision == "fp8" else None
    model = prepare_model(loaded.model, opts.precision, fp8_mode)
    fingerprint = model_fingerprint(model, conv)  # before the exporters cast it to the engine dtype
    engine_hash = cfg.config_hash(fingerprint, torch.__version__)
    wants_graphs = "onnx" in opts.formats
    chash = export_hash(engine_hash, opts.precision, fp8_mode, cfg, opts.opset if wants_graphs else None)
    graphs = opts.graphs or GRAPH_NAMES
    specs = graph_specs(model, cfg, graphs) if wants_graphs else []
    bar = tqdm(total=len(_steps(opts, graphs)), desc="export", unit="step", disable=not opts.progress)
    arts = []
    with bar:
        bar.set_postfix_str("model copy")
        write_model_dir(root / MODEL_DIR, loaded.model, model_info_for_copy(loaded))
        arts += [make_artefact(root, f"{MODEL_DIR}/transformer.safetensors", "model-weights"),
                 make_artefact(root, f"{MODEL_DIR}/model.json", "model-json")]  # fmt: skip
        bar.update(1)
        arts += _export_formats(model, conv, cfg, specs, root, opts, engine_hash, chash, bar)
    geometry = {k: cfg.to_dict()[k] for k in ("latent_grid_hw", "layout_kind", "first_block_frames", "block_frames")}
    manifest = ExportManifest(
        config_hash=chash, engine_config_hash=engine_hash, model_fingerprint=fingerprint,
        precision=opts.precision, fp8_mode=fp8_mode, formats=tuple(f for f in ("aoti", "onnx", "trt") if f in opts.formats),
        engine_config={k: v for k, v in cfg.to_dict().items() if k != "cache_dir"},
        model_config=loaded.model.config.to_metadata(), convention=_convention_name(loaded),
        geometry={**geometry, "audio_sink_tokens": loaded.model.config.audio_sink_tokens},
        graphs={s.name: s.to_dict() for s in specs}, opset=opts.opset if wants_graphs else None,
        tool_versions=tool_versions(), artefacts=tuple(arts), extra={"source": loaded.name},
    )  # fmt: skip
    _record_onnx_inputs(manifest, root)
    manifest.write(root)
    return manifest


def _export_formats(
    model: AVTransformer, conv: Any, cfg: EngineConfig, specs: list, root: Path, opts: ExportOptions,
    engine_hash: str, chash: str, bar: tqdm,
) -> list:  # fmt: skip
    from omniforcing_rt.export.aoti_export import export_aoti
    from omniforcing_rt.export.onnx_export import export_onnx_graph

    arts = []
    if "aoti" in opts.formats:
        bar.set_postfix_str("AOTInductor compile")
        pkg, man = export_aoti(model, conv, cfg, engine_hash, root, chash)
        arts += [
            make_artefact(root, pkg.as_posix(), "aoti-package"),
            make_artefact(root, man.as_posix(), "aoti-manifest"),
        ]
        bar.update(1)
    else:  # the ONNX graphs need the model in the engine dtype too (export_aoti casts in place)
        model.to(device=torch.device(cfg.device), dtype=_torch_dtype(cfg.dtype))
    for spec in specs if "onnx" in opts.formats else ():
        bar.set_postfix_str(f"ONNX {spec.name}")
        files = export_onnx_graph(model, conv, cfg, spec, root / "onnx" / f"{spec.name}-{chash}.onnx", opts.opset)
        arts += [make_artefact(root, f.relative_to(root).as_posix(), "onnx" if f.suffix == ".onnx" else "onnx-data",
                               spec.name) for f in files]  # fmt: skip
        bar.update(1)
    if "trt" in opts.formats:
        from omniforcing_rt.export.trt_build import TrtBuildOptions, build_engines

        for path in build_engines(root, [s.name for s in specs], chash, TrtBuildOptions(precision=opts.precision),
                                  progress=bar):  # fmt: skip
            rel = path.relative_to(root).as_posix()
            if path.suffix == ".cache":
                arts.append(make_artefact(root, rel, "trt-timing-cache"))
            else:
                arts.append(make_artefact(root, rel, "trt-engine", path.stem.rsplit("-", 1)[0]))
    return arts


def _record_onnx_inputs(manifest: ExportManifest, root: Path) -> None:
    """Replace each ONNX graph's declared inputs by the ones the file really has."""
    from omniforcing_rt.export.onnx_export import onnx_input_names

    for name, entry in manifest.graphs.items():
        art = manifest.artefact("onnx", name)
        if art is not None:
            entry["onnx_inputs"] = onnx_input_names(root / art.path)


def _convention_name(loaded: LoadedModel) -> str:
    return "teacher" if loaded.info.get("convention") == "teacher" else "student"


def _torch_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
