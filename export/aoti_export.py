"""The AOTInductor package of an engine directory: what the C++ engine runs.

The package is built by the engine's own compiler (``compile/export.py`` ``ensure_package``, one
fully dynamic :class:`~omniforcing_rt.compile.denoiser_pass.DenoiserPass` graph), so an exported
directory and the engine's cache can never disagree on the pass's inputs, outputs or manifest.
The only changes: the package lives in ``<dir>/aoti/``, and its ``.pt2`` file carries the export
hash in its name (``denoiser-<config_hash>.pt2``; the package manifest's ``package_file`` names
it, and ``csrc/runtime/engine_config.cc`` reads that field).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from omniforcing_rt.compile.export import MANIFEST_FILE, ensure_package
from omniforcing_rt.engine_config import EngineConfig
from omniforcing_rt.model.config import Convention
from omniforcing_rt.model.transformer import AVTransformer

__all__ = ["AOTI_DIR", "export_aoti"]

AOTI_DIR = "aoti"
"""Sub-directory of the engine directory holding the package."""


def export_aoti(
    model: AVTransformer, convention: Convention, config: EngineConfig, engine_hash: str, root: Path, config_hash: str
) -> list[Path]:
    """Compile ``model`` (moved to the config's device/dtype in place) into ``root/aoti``.

    Returns the files written, relative to ``root``: the package and its manifest.
    """
    build = Path(root) / ".aoti-build"
    built = ensure_package(model, convention, config, engine_hash, cache_dir=build)
    final = Path(root) / AOTI_DIR
    final.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((built / MANIFEST_FILE).read_text())
    package = f"denoiser-{config_hash}.pt2"
    shutil.move(str(built / manifest["package_file"]), str(final / package))
    manifest["package_file"] = package
    (final / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(build, ignore_errors=True)
    return [Path(AOTI_DIR) / package, Path(AOTI_DIR) / MANIFEST_FILE]
