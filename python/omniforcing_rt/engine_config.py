"""EngineConfig: every knob of the C++ streaming engine, validated, hashed and sent to C++ as JSON.

One frozen dataclass with a docstring under every field (vLLM ``config/cache.py`` style).
:meth:`EngineConfig.validate` raises one :class:`ConfigError` listing every problem;
:meth:`EngineConfig.to_json` is what crosses into C++ (``csrc/runtime/engine_config.cc`` parses
and validates it again; ``tests/runtime/test_engine_config.py`` checks the round trip);
:meth:`EngineConfig.config_hash` covers only what changes the compiled artefact (device type,
dtype, backend, page size) together with the model's fingerprint, and names the package
directory in the cache.

Stream geometry and sampling fields (``latent_grid_hw`` ... ``context_noise``) default to None,
meaning "the model's own" (``model.json`` via :class:`~omniforcing_rt.pipeline.stream.StreamConfig`);
:meth:`EngineConfig.resolve` fills them in. ``Engine.from_pretrained`` resolves before use, so
``engine.config`` always shows the values in effect.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from omniforcing_rt.errors import ConfigError

__all__ = ["DEFAULT_KV_BUDGET_BYTES", "EngineConfig", "PACKAGE_FORMAT_VERSION"]

DEFAULT_KV_BUDGET_BYTES = 4 << 30
"""Default page-pool budget (4 GiB)."""

PACKAGE_FORMAT_VERSION = 2
"""Bumped whenever the exported pass's inputs, outputs or manifest change (part of the hash)."""

_BLOCK_S_PER_FRAME = 8 / 24  # seconds per video latent (VIDEO_TEMPORAL_STRIDE / VIDEO_FPS)
_DTYPES = ("float32", "bfloat16", "float16")
_LAYOUTS = ("release", "paper")
_HASHED = ("backend", "device", "dtype", "page_size_tokens")
"""Fields that change the compiled package (the device enters by type: cpu / cuda)."""


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """Configuration of :class:`omniforcing_rt.Engine` (see the module docstring)."""

    # ---- compute fields: these are hashed
    device: str = "cpu"
    """Device of the compiled pass and the KV pools: 'cpu', 'cuda' or 'cuda:N'."""
    dtype: str = "float32"
    """Activation and KV dtype of the compiled pass: 'float32', 'bfloat16' or 'float16'."""
    backend: str = "aoti"
    """Denoiser backend: 'aoti' (AOTInductor package run from C++)."""
    page_size_tokens: int = 64
    """Tokens per KV page. A page holds tokens of one block of one stream; smaller pages waste
    less on partial pages, larger ones mean shorter slot tables."""

    # ---- memory and streams
    video_window_s: float | None = None
    """Video history kept besides block 0, in seconds (whole blocks); None keeps the whole
    stream, up to ``max_stream_s``."""
    audio_window_s: float | None = None
    """Audio history kept besides block 0, in seconds (whole blocks); None as for video."""
    max_stream_s: float = 20.0
    """Longest stream a window of None must hold: each stream's page reservation is sized for it.
    Longer streams (and unlimited ones) need finite windows."""
    max_streams: int = 2
    """Concurrent streams the page pool holds; a further stream raises CacheCapacityError."""
    kv_budget_bytes: int | None = DEFAULT_KV_BUDGET_BYTES
    """Memory budget of the page pools (both modalities, all layers, K and V); exceeding it
    raises CacheCapacityError at engine creation, before anything is allocated. None: no limit."""
    max_batch_streams: int = 4
    """Most streams the worker runs through one batched pass. Runnable streams at the same point
    of the pass sequence with the same shapes (block kind, history length, text length) are
    generated together; 1 runs every stream alone."""
    queue_depth: int = 2
    """Ready chunks buffered per stream; a stream with a full queue is not scheduled
    (back-pressure)."""
    num_threads: int | None = None
    """Intra-op threads of the engine's worker (at::set_num_threads, process-wide); None keeps
    torch's setting."""

    # ---- stream geometry and sampling
    latent_grid_hw: tuple[int, int] | None = None
    """Video latent rows x columns (None: the model's)."""
    layout_kind: str | None = None
    """Block-0 convention, 'release' or 'paper' (None: the model's)."""
    first_block_frames: int | None = None
    """Video latents of block 0 (None: the model's, else the layout kind's default)."""
    block_frames: int | None = None
    """Video latents per later block (None: the model's, 3 = one second)."""
    denoising_step_list: tuple[int, ...] | None = None
    """Student steps on the 0..1000 scale, trailing 0 = clean (None: the model's)."""
    context_noise: int | None = None
    """Noise level of the context-refresh pass, 0..999 (None: the model's, 0)."""

    # ---- host side only
    cache_dir: str | None = None
    """Where compiled packages are kept, one directory per config_hash (None: $OFRT_CACHE_DIR,
    else ~/.cache/omniforcing_rt/engines)."""
    debug_pass_delay_ms: float = 0.0
    """Debug knob: the worker sleeps this long after every pass (makes cancellation mid-block
    observable in tests). Not hashed."""

    def __post_init__(self) -> None:
        for name in ("latent_grid_hw", "denoising_step_list"):
            v = getattr(self, name)
            if isinstance(v, list):
                object.__setattr__(self, name, tuple(v))
        self.validate()

    # ---------------------------------------------------------------------------- checks
    def validate(self) -> None:
        """Raise ConfigError listing every problem of this config."""
        p = self._compute_problems() + self._memory_problems() + self._stream_problems()
        if p:
            raise ConfigError("invalid engine config", p)

    def _compute_problems(self) -> list[str]:
        p = []
        if not isinstance(self.device, str) or self.device.split(":")[0] not in ("cpu", "cuda"):
            p.append(f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.dtype not in _DTYPES:
            p.append(f"dtype must be one of {_DTYPES}, got {self.dtype!r}")
        if self.backend != "aoti":
            p.append(f"backend must be 'aoti', got {self.backend!r}")
        if not _is_int(self.page_size_tokens) or self.page_size_tokens < 1:
            p.append(f"page_size_tokens must be a positive integer, got {self.page_size_tokens!r}")
        return p

    def _memory_problems(self) -> list[str]:
        p = []
        for name in ("video_window_s", "audio_window_s"):
            v = getattr(self, name)
            if v is not None and not (_is_number(v) and math.isfinite(v) and v > 0):
                p.append(f"{name} must be a positive number of seconds or None, got {v!r}")
        if not (_is_number(self.max_stream_s) and math.isfinite(self.max_stream_s) and self.max_stream_s > 0):
            p.append(f"max_stream_s must be a positive number, got {self.max_stream_s!r}")
        for name in ("max_streams", "max_batch_streams", "queue_depth"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                p.append(f"{name} must be a positive integer, got {v!r}")
        for name in ("kv_budget_bytes", "num_threads"):
            v = getattr(self, name)
            if v is not None and (not _is_int(v) or v < 1):
                p.append(f"{name} must be a positive integer or None, got {v!r}")
        if not (_is_number(self.debug_pass_delay_ms) and self.debug_pass_delay_ms >= 0):
            p.append(f"debug_pass_delay_ms must be >= 0, got {self.debug_pass_delay_ms!r}")
        return p

    def _stream_problems(self) -> list[str]:
        p = []
        hw = self.latent_grid_hw
        if hw is not None and (len(hw) != 2 or not all(_is_int(x) and x >= 1 for x in hw)):
            p.append(f"latent_grid_hw must be two positive integers or None, got {hw!r}")
        if self.layout_kind is not None and self.layout_kind not in _LAYOUTS:
            p.append(f"layout_kind must be 'release', 'paper' or None, got {self.layout_kind!r}")
        for name in ("first_block_frames", "block_frames"):
            v = getattr(self, name)
            if v is not None and (not _is_int(v) or v < 1):
                p.append(f"{name} must be a positive integer or None, got {v!r}")
        steps = self.denoising_step_list
        if steps is not None and (not steps or not all(_is_int(t) for t in steps)):
            p.append(f"denoising_step_list must be a non-empty list of integers or None, got {steps!r}")
        if self.context_noise is not None and (not _is_int(self.context_noise) or not 0 <= self.context_noise < 1000):
            p.append(f"context_noise must be an integer in [0, 1000) or None, got {self.context_noise!r}")
        block_s = (self.block_frames or 3) * _BLOCK_S_PER_FRAME
        for name in ("video_window_s", "audio_window_s"):
            v = getattr(self, name)
            if _is_number(v) and v > 0 and v < block_s - 1e-9:
                p.append(f"{name} must be at least one block ({block_s:.3f} s) or None, got {v}")
        return p

    # --------------------------------------------------------------------------- derived
    def resolve(self, stream: Any) -> EngineConfig:
        """Fill the stream fields left None from ``stream`` (a pipeline StreamConfig)."""
        fill = {
            "latent_grid_hw": tuple(stream.latent_grid_hw),
            "layout_kind": getattr(stream.layout_kind, "value", stream.layout_kind),
            "first_block_frames": stream.first_block_frames,
            "block_frames": stream.block_frames,
            "denoising_step_list": tuple(stream.denoising_step_list),
            "context_noise": stream.context_noise,
        }
        return dataclasses.replace(self, **{k: v for k, v in fill.items() if getattr(self, k) is None})

    @property
    def resolved(self) -> bool:
        """Whether every stream field the engine needs is set (first_block_frames may stay None)."""
        need = ("latent_grid_hw", "layout_kind", "block_frames", "denoising_step_list", "context_noise")
        return all(getattr(self, k) is not None for k in need)

    def stream_config(self, base: Any) -> Any:
        """The reference pipeline's StreamConfig with this config's geometry, sampling and windows."""
        r = self.resolve(base)
        return dataclasses.replace(
            base,
            latent_grid_hw=r.latent_grid_hw, layout_kind=r.layout_kind, first_block_frames=r.first_block_frames,
            block_frames=r.block_frames, denoising_step_list=r.denoising_step_list, context_noise=r.context_noise,
            video_window_s=self.video_window_s, audio_window_s=self.audio_window_s,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """All fields, JSON-ready (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        """The JSON string the C++ engine parses (keys sorted, so equal configs give equal text)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EngineConfig:
        """Inverse of :meth:`to_json`."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError("engine config is not valid JSON", [str(e)]) from None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError("invalid engine config", [f"unknown field {k!r}" for k in unknown])
        return cls(**d)

    def config_hash(self, model_fingerprint: str, torch_version: str) -> str:
        """16 hex digits naming the compiled package: hashed fields + model + torch + format."""
        key = {k: getattr(self, k) for k in _HASHED}
        key["device"] = self.device.split(":")[0]
        key.update(model=model_fingerprint, torch=torch_version, format=PACKAGE_FORMAT_VERSION)
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
