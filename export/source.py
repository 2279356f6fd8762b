"""What ``omniforcing-rt export`` accepts as its model, resolved to a :class:`LoadedModel`.

* a model name (``default``) or a model directory with ``model.json``: the official release
  layouts and our own exports load through :func:`omniforcing_rt.models.load_model` (LTX-2 single
  file, shards, index, fp8 files, a generator on top);
* a training checkpoint written by our trainer (``step_<8-digit step>.pt``,
  ``omniforcing_rt.distill/1``): exported to a model directory first with
  :func:`omniforcing_rt.distill.checkpoint.export_generator` (the geometry comes from the
  checkpoint's ``stream`` entry);
* a bare transformer checkpoint (safetensors file, shard directory or index) without
  ``model.json``: a ``model.json`` is written next to the work files, with the geometry given in
  :class:`SourceOptions` (the checkpoint's metadata has the architecture, not the stream).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omniforcing_rt.errors import CheckpointError, ConfigError
from omniforcing_rt.models import NAMED_MODELS, LoadedModel, load_model

__all__ = ["SourceOptions", "model_info_for_copy", "resolve_source"]


@dataclass(frozen=True)
class SourceOptions:
    """How to read a source that carries no stream geometry of its own."""

    use_ema: bool = False
    """Training checkpoints: export ``generator_ema`` instead of ``generator``."""
    latent_grid_hw: tuple[int, int] | None = None
    """Bare checkpoints: video latent rows x columns (required for them)."""
    text_tokens: int = 1024
    """Bare checkpoints: text context length (1024 for LTX-2)."""
    convention: str = "student"
    """Bare checkpoints: 'student' (OmniForcing) or 'teacher' (LTX-2 header conventions)."""


def resolve_source(source: Any, work_dir: Path, options: SourceOptions | None = None) -> LoadedModel:
    """Load ``source`` (see the module docstring); ``work_dir`` receives converted model dirs."""
    opts = options or SourceOptions()
    if hasattr(source, "model") and hasattr(source, "stream"):
        return source  # type: ignore[no-any-return]
    if str(source) in NAMED_MODELS or (Path(source) / "model.json").is_file():
        return load_model(source)
    path = Path(source)
    if not path.exists():
        raise CheckpointError(f"{source!r} is neither a model name ({', '.join(NAMED_MODELS)}) nor an existing path")
    if path.suffix in (".pt", ".pth"):
        from omniforcing_rt.distill.checkpoint import export_generator

        return load_model(export_generator(path, Path(work_dir) / "generator", use_ema=opts.use_ema))
    if opts.latent_grid_hw is None:
        raise ConfigError(
            f"{path} has no model.json, so its stream geometry is unknown",
            ["pass --latent-grid-hw H W (and --text-tokens if not 1024), or export a model directory"],
        )
    root = Path(work_dir) / "source"
    root.mkdir(parents=True, exist_ok=True)
    info = {"transformer": str(path.resolve()), "latent_grid_hw": list(opts.latent_grid_hw),
            "text_tokens": opts.text_tokens, "convention": opts.convention}  # fmt: skip
    (root / "model.json").write_text(json.dumps(info, indent=1) + "\n")
    return load_model(root)


_NOT_COPIED = ("transformer", "generator", "media", "text_encoder", "text_checkpoint")


def model_info_for_copy(loaded: LoadedModel) -> dict[str, Any]:
    """``model.json`` entries of the engine directory's model copy (weights, media and text paths
    dropped: the copy holds the transformer only; its geometry and sampling defaults stay)."""
    info = {k: v for k, v in loaded.info.items() if k not in _NOT_COPIED}
    info.setdefault("latent_grid_hw", list(loaded.stream.latent_grid_hw))
    info.setdefault("text_tokens", loaded.text_tokens)
    if loaded.model.config.audio_sink_tokens:
        info["audio_sink_tokens"] = loaded.model.config.audio_sink_tokens
    return info
