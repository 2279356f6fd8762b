"""Named models and model directories: what ``--model`` resolves to.

A model directory holds ``model.json`` (geometry and sampling defaults) beside the transformer
weights in the LTX-2 checkpoint layout. The package ships one, ``default``: a small model of the
real LTX-2 architecture with **seeded random weights** (no training). It exercises every code path
(loading, streaming, caches, the engine) at laptop speed, but its output is noise-like; trained
weights replace it when the project's own distilled student ships. ``scripts/make_default_model.py``
regenerates it bit for bit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from omniforcing_rt.errors import CheckpointError, ConfigError
from omniforcing_rt.model.config import Convention, ModelConfig
from omniforcing_rt.model.transformer import AVTransformer
from omniforcing_rt.model.weights import LTX_PREFIX, load_transformer
from omniforcing_rt.pipeline.layout import LayoutKind
from omniforcing_rt.pipeline.stream import StreamConfig

__all__ = ["DEFAULT_MODEL_DIR", "LoadedModel", "init_random_weights", "load_model", "write_model_dir"]

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "default"
NAMED_MODELS = {"default": DEFAULT_MODEL_DIR}


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to stream."""

    name: str
    """Name or directory it was loaded from."""
    model: AVTransformer
    """The transformer (eval mode)."""
    stream: StreamConfig
    """Default stream geometry and sampling for this model."""
    text_tokens: int
    """Text context length the model expects (L)."""
    info: dict[str, Any]
    """The parsed model.json."""


def load_model(name_or_dir: str | Path = "default", dtype: torch.dtype | None = None) -> LoadedModel:
    """Resolve ``default`` or a model directory and load it."""
    root = NAMED_MODELS.get(str(name_or_dir), Path(name_or_dir))
    manifest = root / "model.json"
    if not manifest.exists():
        known = ", ".join(NAMED_MODELS)
        raise CheckpointError(
            f"{name_or_dir!r} is neither a known model name ({known}) nor a directory with model.json"
        )
    try:
        info = json.loads(manifest.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{manifest} is not valid JSON: {e}") from None
    problems = [f"model.json lacks '{k}'" for k in ("transformer", "latent_grid_hw", "text_tokens") if k not in info]
    if problems:
        raise ConfigError(f"invalid {manifest}", problems)
    cfg = None
    if "audio_sink_tokens" in info:
        from omniforcing_rt.model.weights import checkpoint_files, read_metadata

        meta = read_metadata(checkpoint_files(root / info["transformer"]))
        cfg = ModelConfig.from_metadata(meta or {}, audio_sink_tokens=int(info["audio_sink_tokens"]))
    model, _, _ = load_transformer(
        root / info["transformer"], generator=_opt(root, info, "generator"), config=cfg, dtype=dtype
    )
    conv = Convention.teacher() if info.get("convention") == "teacher" else Convention.streaming()
    stream = StreamConfig(
        latent_grid_hw=tuple(info["latent_grid_hw"]),
        layout_kind=LayoutKind(info.get("layout", "release")),
        denoising_step_list=tuple(info.get("denoising_step_list", (1000, 909, 725, 421, 0))),
        convention=conv,
    )
    return LoadedModel(str(name_or_dir), model, stream, int(info["text_tokens"]), info)


def _opt(root: Path, info: dict[str, Any], key: str) -> Path | None:
    return root / info[key] if info.get(key) else None


def init_random_weights(model: AVTransformer, seed: int) -> None:
    """Seeded initialisation: linear weights N(0, 1/fan_in), biases and tables small normals."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("weight") and p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
            elif name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)


def write_model_dir(root: Path, model: AVTransformer, info: dict[str, Any]) -> None:
    """Write ``transformer.safetensors`` (LTX-2 layout + config metadata) and ``model.json``."""
    from safetensors.torch import save_file

    root.mkdir(parents=True, exist_ok=True)
    state = {LTX_PREFIX + k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {"config": json.dumps({"transformer": model.config.to_metadata()})}
    save_file(state, str(root / "transformer.safetensors"), metadata=meta)
    (root / "model.json").write_text(json.dumps({"transformer": "transformer.safetensors", **info}, indent=1) + "\n")
