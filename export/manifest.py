"""The export manifest (``export.json``): what an engine directory holds and what it was built for.

An engine directory is self-describing: ``export.json`` names the model config, stream geometry,
block layout, step list, precision, the tool versions and two hashes, and lists every artefact
with its size and sha256. Loading checks the directory *before* using anything in it:

* a listed artefact is missing, or its size/sha256 differs (truncated, edited, swapped):
  :class:`~omniforcing_rt.errors.CheckpointError` naming the file;
* ``export.json`` is unreadable or from another format version: CheckpointError;
* the requested :class:`~omniforcing_rt.engine_config.EngineConfig` asks for something the
  export was not built for (dtype, device, page size, geometry, steps): ConfigError listing every
  difference;
* the hashes recomputed from the directory's model do not match: CheckpointError.

``config_hash`` (16 hex digits) covers the engine hash (model fingerprint, device type, dtype,
backend, page size, torch version, package format) plus precision, fp8 mode, geometry, steps and
opset; every artefact file name carries it, so artefacts of two exports never mix.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omniforcing_rt.engine_config import EngineConfig
from omniforcing_rt.errors import CheckpointError, ConfigError

__all__ = [
    "EXPORT_FORMAT",
    "MANIFEST_NAME",
    "Artefact",
    "ExportManifest",
    "check_artefacts",
    "config_mismatches",
    "export_hash",
    "is_export_dir",
    "sha256_file",
    "tool_versions",
]

EXPORT_FORMAT = "omniforcing_rt.export/1"
"""Format tag of ``export.json``; bumped when the directory layout changes."""

MANIFEST_NAME = "export.json"
"""The manifest's file name inside an engine directory."""

GEOMETRY_FIELDS = ("latent_grid_hw", "layout_kind", "first_block_frames", "block_frames")
"""EngineConfig fields that fix the per-variant graphs' token counts."""

CHECKED_FIELDS = ("device", "dtype", "backend", "page_size_tokens", *GEOMETRY_FIELDS, "denoising_step_list",
                  "context_noise")  # fmt: skip
"""EngineConfig fields a request must agree on with the export (windows, streams, budgets are free)."""


@dataclass(frozen=True)
class Artefact:
    """One file of the engine directory."""

    path: str
    """Path relative to the directory (POSIX separators)."""
    kind: str
    """'aoti-package', 'aoti-manifest', 'onnx', 'onnx-data', 'trt-engine', 'trt-timing-cache',
    'model-weights', 'model-json'."""
    sha256: str
    """Hex digest of the file's bytes."""
    bytes: int
    """File size."""
    graph: str | None = None
    """Graph name (graphs.GRAPH_NAMES) for graph artefacts."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"path": self.path, "kind": self.kind, "sha256": self.sha256, "bytes": self.bytes, "graph": self.graph}


@dataclass(frozen=True)
class ExportManifest:
    """The parsed ``export.json`` (see the module docstring)."""

    config_hash: str
    """Export hash; part of every artefact name."""
    engine_config_hash: str
    """``EngineConfig.config_hash`` of the AOTI package (the C++ engine checks this one)."""
    model_fingerprint: str
    """sha256 of the exported model (after fp8 quantization) and its convention."""
    precision: str
    """'fp32', 'bf16' or 'fp8'."""
    fp8_mode: str | None
    """'scaled' or 'cast' for fp8 exports, else None."""
    formats: tuple[str, ...]
    """Formats written: a subset of ('aoti', 'onnx', 'trt')."""
    engine_config: dict[str, Any]
    """The resolved EngineConfig the artefacts were built for (``EngineConfig.to_dict``)."""
    model_config: dict[str, Any]
    """The transformer architecture (``ModelConfig.to_metadata``)."""
    convention: str
    """'student' or 'teacher'."""
    geometry: dict[str, Any]
    """Latent grid, layout kind, block frames, and each graph's token counts."""
    graphs: dict[str, dict[str, Any]]
    """Graph name -> GraphSpec.to_dict() (ONNX/TRT variants)."""
    opset: int | None
    """ONNX opset of the ONNX artefacts (None without ONNX)."""
    tool_versions: dict[str, str]
    """Versions of torch, onnx, onnxruntime, onnxscript, tensorrt, omniforcing_rt used."""
    artefacts: tuple[Artefact, ...]
    """Every file of the directory except export.json."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes (source of the model, fp8 accuracy report, ...)."""

    def to_json(self) -> str:
        """The text of ``export.json``."""
        d = {
            "format": EXPORT_FORMAT, "config_hash": self.config_hash, "engine_config_hash": self.engine_config_hash,
            "model_fingerprint": self.model_fingerprint, "precision": self.precision, "fp8_mode": self.fp8_mode,
            "formats": list(self.formats), "engine_config": self.engine_config, "model_config": self.model_config,
            "convention": self.convention, "geometry": self.geometry, "graphs": self.graphs, "opset": self.opset,
            "tool_versions": self.tool_versions, "artefacts": [a.to_dict() for a in self.artefacts],
            "extra": self.extra,
        }  # fmt: skip
        return json.dumps(d, indent=1, sort_keys=False) + "\n"

    @classmethod
    def read(cls, root: Path) -> ExportManifest:
        """Parse ``root/export.json``; CheckpointError when absent, unreadable or foreign."""
        path = Path(root) / MANIFEST_NAME
        if not path.is_file():
            raise CheckpointError(f"{root} is not an engine directory: {MANIFEST_NAME} is missing")
        try:
            d = json.loads(path.read_text())
            if d.get("format") != EXPORT_FORMAT:
                raise CheckpointError(f"{path}: format {d.get('format')!r}, expected {EXPORT_FORMAT!r}")
            arts = tuple(Artefact(**a) for a in d["artefacts"])
            return cls(
                config_hash=d["config_hash"], engine_config_hash=d["engine_config_hash"],
                model_fingerprint=d["model_fingerprint"], precision=d["precision"], fp8_mode=d["fp8_mode"],
                formats=tuple(d["formats"]), engine_config=d["engine_config"], model_config=d["model_config"],
                convention=d["convention"], geometry=d["geometry"], graphs=d["graphs"], opset=d["opset"],
                tool_versions=d["tool_versions"], artefacts=arts, extra=d.get("extra", {}),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path} is corrupt: {type(e).__name__}: {e}") from None

    def write(self, root: Path) -> Path:
        """Write ``root/export.json`` atomically (temp file + rename)."""
        path = Path(root) / MANIFEST_NAME
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)
        return path

    def artefact(self, kind: str, graph: str | None = None) -> Artefact | None:
        """The first artefact of ``kind`` (and ``graph``), or None."""
        for a in self.artefacts:
            if a.kind == kind and (graph is None or a.graph == graph):
                return a
        return None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def make_artefact(root: Path, rel: str, kind: str, graph: str | None = None) -> Artefact:
    """Describe ``root/rel`` (size and sha256)."""
    path = Path(root) / rel
    return Artefact(rel, kind, sha256_file(path), path.stat().st_size, graph)


def check_artefacts(root: Path, manifest: ExportManifest) -> None:
    """CheckpointError listing every missing, resized or altered artefact."""
    problems = []
    for a in manifest.artefacts:
        path = Path(root) / a.path
        if not path.is_file():
            problems.append(f"missing artefact {a.path} ({a.kind})")
        elif path.stat().st_size != a.bytes:
            problems.append(f"corrupt artefact {a.path}: {path.stat().st_size} bytes, manifest says {a.bytes}")
        elif sha256_file(path) != a.sha256:
            problems.append(f"corrupt artefact {a.path}: sha256 differs from the manifest")
    if problems:
        raise CheckpointError(f"engine directory {root} is damaged:\n  - " + "\n  - ".join(problems))


def config_mismatches(manifest: ExportManifest, config: EngineConfig) -> list[str]:
    """Differences between what ``config`` (resolved) asks for and what the export was built for."""
    want, have = config.to_dict(), manifest.engine_config
    out = []
    for k in CHECKED_FIELDS:
        w, h = want.get(k), have.get(k)
        if k == "device":
            w, h = str(w).split(":")[0], str(h).split(":")[0]
        if w != h:
            out.append(f"{k}: requested {w!r}, the export was built for {h!r}")
    return out


def check_config(manifest: ExportManifest, config: EngineConfig) -> None:
    """ConfigError listing every difference (see :func:`config_mismatches`)."""
    problems = config_mismatches(manifest, config)
    if problems:
        raise ConfigError(f"the requested engine config does not match the export (config_hash {manifest.config_hash})",
                          problems)  # fmt: skip


def export_hash(engine_config_hash: str, precision: str, fp8_mode: str | None, config: EngineConfig,
                opset: int | None) -> str:  # fmt: skip
    """16 hex digits: the engine hash plus what only an export fixes (see the module docstring)."""
    key = {
        "engine": engine_config_hash, "precision": precision, "fp8_mode": fp8_mode, "opset": opset,
        "format": EXPORT_FORMAT, **{k: config.to_dict()[k] for k in CHECKED_FIELDS if k not in ("device", "dtype")},
    }  # fmt: skip
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def is_export_dir(path: Any) -> bool:
    """Whether ``path`` is a directory holding ``export.json``."""
    try:
        return Path(path).is_dir() and (Path(path) / MANIFEST_NAME).is_file()
    except TypeError:
        return False


def tool_versions() -> dict[str, str]:
    """Versions of the tools that shape the artefacts ('absent' when not importable)."""
    import importlib.metadata as md

    out = {}
    for pkg in ("torch", "onnx", "onnxruntime", "onnxscript", "tensorrt", "omniforcing_rt"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "absent"
    return out
