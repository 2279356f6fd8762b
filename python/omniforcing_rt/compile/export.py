"""Export and compile the denoiser pass into an engine package, cached by config hash.

A package is a directory ``<cache>/<config_hash>/`` holding

* ``denoiser.pt2``: :class:`~omniforcing_rt.compile.denoiser_pass.DenoiserPass` captured with
  ``torch.export`` (dynamic token, sink, history, text and pool-page dims) and compiled with
  ``torch._inductor.aoti_compile_and_package``; the weights are baked in as constants;
* ``manifest.json``: what C++ needs besides the graph (``csrc/include/ofrt/config.h``
  ModelManifest): layer count, cache widths, sink count, the RoPE convention with its exact
  frequency grids, input/output names, page size, device, dtype, config hash.

Packages are built in a temporary sibling directory and renamed into place, so concurrent
processes never see half a package; a present manifest means a complete package and is reused.
The hash covers the model (its fingerprint), device type, dtype, backend, page size, torch
version and the package format, so a stale package is never picked up.

Compile cost on the 2-core CPU: ~1 min for the 2-layer default model (most of it Inductor's
Python lowering and g++ on the generated wrapper; the wrapper is built at -O0, which halves its
compile and does not show in pass time since it only sequences kernel calls).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch.export import Dim

from omniforcing_rt.compile.denoiser_pass import (
    CACHE_ORDER,
    INPUT_NAMES,
    OUTPUT_NAMES,
    ROPE_TABLES,
    VIDEO_CACHES,
    DenoiserPass,
)
from omniforcing_rt.engine_config import PACKAGE_FORMAT_VERSION, EngineConfig
from omniforcing_rt.errors import UnsupportedError
from omniforcing_rt.model.config import Convention
from omniforcing_rt.model.rope import frequency_grid
from omniforcing_rt.model.transformer import AVTransformer

__all__ = [
    "PACKAGE_FILE",
    "default_cache_dir",
    "example_pass_inputs",
    "ensure_package",
    "model_fingerprint",
    "package_manifest",
    "rope_manifest",
]

PACKAGE_FILE = "denoiser.pt2"
MANIFEST_FILE = "manifest.json"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_INDUCTOR_CONFIGS = {"aot_inductor.compile_wrapper_opt_level": "O0"}


def default_cache_dir() -> Path:
    """``$OFRT_CACHE_DIR``, else ``~/.cache/omniforcing_rt/engines``."""
    env = os.environ.get("OFRT_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "omniforcing_rt" / "engines"


def model_fingerprint(model: AVTransformer, convention: Convention) -> str:
    """sha256 over the architecture, the runtime convention and every parameter and buffer."""
    h = hashlib.sha256()
    h.update(json.dumps(model.config.to_metadata(), sort_keys=True, default=str).encode())
    h.update(repr(convention).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def rope_manifest(model: AVTransformer, convention: Convention) -> dict[str, Any]:
    """The RoPE convention and the four tables' geometry with their exact frequency grids.

    ``grid`` holds the values ``rope._angles`` multiplies by (``frequency_grid`` cast to the
    angle dtype), so the C++ tables are bit-identical to ``AVTransformer.rope``.
    """
    cfg, th = model.config, model.config.positional_embedding_theta
    wide = convention.rope_angle_precision == "float64"
    xmax = (cfg.cross_pe_max_pos,)
    specs = {
        "video": (cfg.video_dim, cfg.num_attention_heads, cfg.positional_embedding_max_pos),
        "audio": (cfg.audio_dim, cfg.audio_num_attention_heads, cfg.audio_positional_embedding_max_pos),
        "video_cross": (cfg.av_cross_dim, cfg.num_attention_heads, xmax),
        "audio_cross": (cfg.av_cross_dim, cfg.audio_num_attention_heads, xmax),
    }
    tables = {}
    for name in ROPE_TABLES:
        dim, heads, max_pos = specs[name]
        grid = frequency_grid(th, len(max_pos), dim, convention.frequencies_precision)
        grid = grid.to(torch.float64 if wide else torch.float32).to(torch.float64)
        tables[name] = {"dim": dim, "heads": heads, "max_pos": list(max_pos), "grid": grid.tolist()}
    return {
        "type": convention.rope_type.value,
        "angle_dtype": "float64" if wide else "float32",
        "position_style": convention.position_style,
        "position_dtype": str(convention.position_dtype).removeprefix("torch."),
        "tables": tables,
    }


def package_manifest(
    model: AVTransformer, convention: Convention, config: EngineConfig, config_hash: str
) -> dict[str, Any]:
    """The manifest.json of the package (``csrc/include/ofrt/config.h`` ModelManifest)."""
    cfg = model.config
    return {
        "format_version": PACKAGE_FORMAT_VERSION,
        "config_hash": config_hash,
        "device": config.device.split(":")[0],
        "dtype": config.dtype,
        "page_size_tokens": config.page_size_tokens,
        "num_layers": cfg.num_layers,
        "in_channels": cfg.in_channels,
        "audio_in_channels": cfg.audio_in_channels,
        "audio_sink_tokens": cfg.audio_sink_tokens,
        "cache_dims": {
            "video_self": cfg.video_dim,
            "v2a": cfg.av_cross_dim,
            "audio_self": cfg.audio_dim,
            "a2v": cfg.av_cross_dim,
        },  # fmt: skip
        "rope": rope_manifest(model, convention),
        "input_names": list(INPUT_NAMES),
        "output_names": list(OUTPUT_NAMES),
        "package_file": PACKAGE_FILE,
    }


def _example_inputs(
    model: AVTransformer, convention: Convention, config: EngineConfig, batch: int = 2
) -> dict[str, torch.Tensor]:
    """Inputs of ``batch`` streams at a plausible later block; every dynamic dim gets a distinct
    size >= 2 so export cannot specialise one to another."""
    return example_pass_inputs(
        model, convention, config, tokens=(11, 7), sinks=2, history=(13, 5), pages=(4, 6), text_tokens=3,
        batch=batch, sigma=0.5, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip


def example_pass_inputs(
    model: AVTransformer, convention: Convention, config: EngineConfig, *, tokens: tuple[int, int], sinks: int,
    history: tuple[int, int], pages: tuple[int, int], text_tokens: int, batch: int, sigma: float,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """Random inputs of one :class:`DenoiserPass` call, laid out as the pass expects.

    ``tokens`` = (video, audio) tokens per stream, ``sinks`` sink rows (audio tables carry them only
    when the model has sinks), ``history`` = (video, audio) history tokens per stream, ``pages`` =
    (video, audio) pool pages (at least one spare page is added when the history needs more).
    Float tensors are in the config's dtype except ``sigma`` (fp32); all are on its device.
    Shared by the engine package build and the export graphs (export/graphs.py).
    """
    cfg, ps, b, g = model.config, config.page_size_tokens, batch, generator
    (tv, ta), (hv, ha), lt = tokens, history, text_tokens
    pv, pa = max(pages[0], -(-b * hv // ps) + 1), max(pages[1], -(-b * ha // ps) + 1)
    rows = ta + (sinks if cfg.audio_sink_tokens else 0)
    ex: dict[str, torch.Tensor] = {
        "video_tokens": torch.randn(b, tv, cfg.in_channels, generator=g),
        "audio_tokens": torch.randn(b, ta, cfg.audio_in_channels, generator=g),
        "sink_rows": torch.arange(sinks).clamp(max=max(cfg.audio_sink_tokens - 1, 0)),
        "sigma": torch.full((b,), float(sigma)),
        "text_mask": torch.zeros(b, 1, 1, lt),
        "video_slots": torch.randperm(pv * ps, generator=g)[: b * hv],
        "audio_slots": torch.randperm(pa * ps, generator=g)[: b * ha],
    }
    tables = {
        "video": (cfg.video_dim, cfg.num_attention_heads, tv), "audio": (cfg.audio_dim, cfg.audio_num_attention_heads, rows),
        "video_cross": (cfg.av_cross_dim, cfg.num_attention_heads, tv),
        "audio_cross": (cfg.av_cross_dim, cfg.audio_num_attention_heads, rows),
    }  # fmt: skip
    split = convention.rope_type.value == "split"
    for name in ROPE_TABLES:
        dim, heads, n = tables[name]
        angle = torch.rand((b, heads, n, dim // (2 * heads)) if split else (b, n, dim), generator=g) * 6.28
        ex[f"rope_{name}_cos"], ex[f"rope_{name}_sin"] = angle.cos(), angle.sin()
    for m, d in (("video", cfg.video_dim), ("audio", cfg.audio_dim)):
        ex[f"text_{m}_k"] = torch.randn(cfg.num_layers, b * lt, d, generator=g)
        ex[f"text_{m}_v"] = torch.randn(cfg.num_layers, b * lt, d, generator=g)
    dims = {"video_self": cfg.video_dim, "v2a": cfg.av_cross_dim, "audio_self": cfg.audio_dim, "a2v": cfg.av_cross_dim}
    for c in CACHE_ORDER:
        for kv in ("k", "v"):
            ex[f"{c}_{kv}"] = torch.randn(cfg.num_layers, pv if c in VIDEO_CACHES else pa, ps, dims[c], generator=g)
    dev, dt = torch.device(config.device), _DTYPES[config.dtype]
    return {k: (t.to(dev, dt) if t.is_floating_point() and k != "sigma" else t.to(dev)) for k, t in ex.items()}


def _dynamic_shapes(convention: Convention) -> tuple[dict[int, Any] | None, ...]:
    # Concatenated per-stream axes (text B * Lt, slots B * H) are products of two dims, which
    # export cannot declare: Dim.AUTO lets it derive them and guard the relation at run time.
    batch, tv, ta = Dim("batch", min=1), Dim("video_tokens", min=1), Dim("audio_tokens", min=1)
    sinks, lt = Dim("sink_rows", min=0), Dim("text_tokens", min=1)
    pv, pa, auto = Dim("video_pages", min=1), Dim("audio_pages", min=1), Dim.AUTO
    tok = 2 if convention.rope_type.value == "split" else 1  # token axis of a rope table
    ds: dict[str, dict[int, Any] | None] = {
        "video_tokens": {0: batch, 1: tv}, "audio_tokens": {0: batch, 1: ta}, "sink_rows": {0: sinks},
        "sigma": {0: batch}, "text_mask": {0: batch, 3: lt}, "video_slots": {0: auto}, "audio_slots": {0: auto},
    }  # fmt: skip
    for name in ROPE_TABLES:  # audio tables have sinks + audio_tokens rows: let export derive it
        d = tv if name.startswith("video") else auto
        ds[f"rope_{name}_cos"] = ds[f"rope_{name}_sin"] = {0: batch, tok: d}
    for m in ("video", "audio"):
        ds[f"text_{m}_k"] = ds[f"text_{m}_v"] = {1: auto}
    for c in CACHE_ORDER:
        ds[f"{c}_k"] = ds[f"{c}_v"] = {1: pv if c in VIDEO_CACHES else pa}
    return tuple(ds[n] for n in INPUT_NAMES)


def _build(model: AVTransformer, convention: Convention, config: EngineConfig, out: Path, config_hash: str) -> None:
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise UnsupportedError("cannot compile the engine for CUDA", ["torch.cuda.is_available() is False"])
    dev, dt = torch.device(config.device), _DTYPES[config.dtype]
    module = DenoiserPass(model.to(device=dev, dtype=dt).eval(), convention).eval()
    example = _example_inputs(model, convention, config)
    args = tuple(example[n] for n in INPUT_NAMES)
    with torch.no_grad():
        ep = torch.export.export(module, args, dynamic_shapes=(_dynamic_shapes(convention),), strict=False)
        torch._inductor.aoti_compile_and_package(
            ep, package_path=str(out / PACKAGE_FILE), inductor_configs=dict(_INDUCTOR_CONFIGS)
        )
    (out / MANIFEST_FILE).write_text(
        json.dumps(package_manifest(model, convention, config, config_hash), indent=1) + "\n"
    )


def ensure_package(
    model: AVTransformer, convention: Convention, config: EngineConfig, config_hash: str, cache_dir: Path | None = None
) -> Path:
    """The package directory for ``config_hash``, compiling it first if it is not cached.

    ``model`` is compiled as is (moved to the config's device and dtype): pass a model the caller
    no longer needs in another dtype, or a copy.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / config_hash
    if (final / MANIFEST_FILE).exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{config_hash}-", dir=root))
    try:
        _build(model, convention, config, tmp, config_hash)
        try:
            tmp.rename(final)
        except OSError:  # another process finished first: keep its package
            if not (final / MANIFEST_FILE).exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
