"""Open an engine directory for the C++ engine or the verifier, checking it first.

:func:`load_export` is what ``Engine.from_pretrained(DIR)`` calls for a directory holding
``export.json``. The order of checks is chosen so each failure names its cause:

1. ``export.json`` readable and of this format, every artefact present with its recorded size and
   sha256 (CheckpointError: missing artefact / corrupt file);
2. the requested config agrees with what the export was built for (ConfigError listing fields);
3. the model copy, prepared as at export time (fp8 re-applied), hashes to the recorded
   ``engine_config_hash`` and ``config_hash`` (CheckpointError: hash mismatch, e.g. a different
   torch version or weights swapped together with a forged manifest entry).

Nothing is compiled: the AOTI package inside the directory is used as is.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omniforcing_rt.export.aoti_export import AOTI_DIR
from omniforcing_rt.export.exporter import MODEL_DIR, prepare_model
from omniforcing_rt.export.manifest import ExportManifest, check_artefacts, check_config, export_hash

from omniforcing_rt.compile.export import MANIFEST_FILE, model_fingerprint
from omniforcing_rt.engine_config import EngineConfig
from omniforcing_rt.errors import CheckpointError, UnsupportedError
from omniforcing_rt.models import LoadedModel, load_model

__all__ = ["LoadedExport", "load_export", "manifest_config"]

_HOST_FIELDS = ("cache_dir",)


@dataclass(frozen=True)
class LoadedExport:
    """A checked engine directory."""

    root: Path
    """The directory."""
    manifest: ExportManifest
    """Its parsed export.json."""
    loaded: LoadedModel
    """The model copy (fp8-quantized for fp8 exports), in its checkpoint dtype."""
    config: EngineConfig
    """The requested config, resolved against the model's stream defaults."""

    @property
    def package_dir(self) -> Path:
        """The AOTI package directory (``_C.Engine``'s second argument)."""
        return self.root / AOTI_DIR

    def package_manifest_json(self) -> str:
        """Text of the AOTI package's manifest.json."""
        return (self.package_dir / MANIFEST_FILE).read_text()


def manifest_config(manifest: ExportManifest, **overrides: Any) -> EngineConfig:
    """The EngineConfig the export was built for, with ``overrides`` (windows, streams, ...)."""
    fields = {f.name for f in dataclasses.fields(EngineConfig)}
    base = {k: v for k, v in manifest.engine_config.items() if k in fields and k not in _HOST_FIELDS}
    return EngineConfig(**{**base, **overrides})


def load_export(root: str | Path, config: EngineConfig | None = None, *, need_aoti: bool = True) -> LoadedExport:
    """Check and open the engine directory ``root`` (see the module docstring).

    ``config`` None means "as exported" (:func:`manifest_config`).
    """
    root = Path(root)
    manifest = ExportManifest.read(root)
    check_artefacts(root, manifest)
    if need_aoti and "aoti" not in manifest.formats:
        raise UnsupportedError(
            f"{root} holds no AOTInductor package", [f"its formats are {list(manifest.formats)}; re-export with aoti"]
        )
    loaded = load_model(root / MODEL_DIR)
    cfg = (config or manifest_config(manifest)).resolve(loaded.stream)
    check_config(manifest, cfg)
    model = prepare_model(loaded.model, manifest.precision, manifest.fp8_mode)
    fingerprint = model_fingerprint(model, loaded.stream.convention)
    engine_hash = cfg.config_hash(fingerprint, torch.__version__)
    problems = []
    if fingerprint != manifest.model_fingerprint:
        problems.append("the model copy's fingerprint differs from the one recorded at export")
    if engine_hash != manifest.engine_config_hash:
        problems.append(
            f"engine_config_hash: recomputed {engine_hash}, manifest {manifest.engine_config_hash} "
            f"(torch here {torch.__version__}, at export {manifest.tool_versions.get('torch')})"
        )
    chash = export_hash(engine_hash, manifest.precision, manifest.fp8_mode, cfg, manifest.opset)
    if chash != manifest.config_hash:
        problems.append(f"config_hash: recomputed {chash}, manifest {manifest.config_hash}")
    if need_aoti:
        pkg = json.loads((root / AOTI_DIR / MANIFEST_FILE).read_text())
        if pkg.get("config_hash") != manifest.engine_config_hash:
            problems.append(
                f"aoti/{MANIFEST_FILE} config_hash {pkg.get('config_hash')} != {manifest.engine_config_hash}"
            )
    if problems:
        raise CheckpointError(f"hash mismatch in engine directory {root}:\n  - " + "\n  - ".join(problems))
    return LoadedExport(root, manifest, dataclasses.replace(loaded, model=model), cfg)
