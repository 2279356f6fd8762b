"""The public engine API: :class:`Engine`, :class:`EngineStream`, :class:`StreamChunk`.

The hot loop runs in C++ (``csrc/runtime/engine.cc``): Python prepares a stream (prompt -> text
K/V, once per prompt, eagerly) and then only waits for chunks, with the GIL released::

    engine = Engine.from_pretrained("default", EngineConfig(video_window_s=2, audio_window_s=2))
    with engine.stream("a red ball bounces", seed=0, seconds=5) as stream:
        for chunk in stream:
            ...  # chunk.video_latents [F, C, H, W], chunk.audio_latents [T, C], chunk.timings

``Engine.from_pretrained`` loads the model (a name, a directory or an already loaded model),
resolves the config against the model's stream defaults, compiles the denoiser pass into an
AOTInductor package (cached by :meth:`EngineConfig.config_hash`) and starts the native engine.
Several streams may run at once on one engine (up to ``max_streams``); each is an iterator and a
context manager, and :meth:`EngineStream.cancel` stops it between two passes. Errors from C++
arrive as the :mod:`omniforcing_rt.errors` classes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from omniforcing_rt import _C
from omniforcing_rt.engine_config import EngineConfig
from omniforcing_rt.errors import EngineDeadError, InputError, StreamAbortedError
from omniforcing_rt.model.positions import AUDIO_SAMPLE_RATE, VIDEO_FPS
from omniforcing_rt.model.transformer import TextContext
from omniforcing_rt.pipeline.layout import BlockLayout, BlockSpec, BlockTimestamps
from omniforcing_rt.pipeline.prompt import PromptFeatures

__all__ = ["Engine", "EngineConfig", "EngineStream", "StreamChunk"]

log = logging.getLogger("omniforcing_rt.engine")

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class StreamChunk(BlockTimestamps):
    """One generated block as delivered by the engine."""

    spec: BlockSpec
    """Block geometry, media spans and timestamps."""
    video_latents: torch.Tensor
    """[F, C, H, W] float32 clean video latents (CPU)."""
    audio_latents: torch.Tensor
    """[T, C] float32 clean audio latents (CPU; sinks never appear)."""
    timings: dict[str, Any]
    """Per-stage wall times in ms: plan_ms, noise_ms, denoise_ms, refresh_ms, commit_ms,
    output_ms, block_ms, pass_ms (every pass in order) and batch_streams (streams that shared
    the block's passes; pass times are then those of the whole batch)."""
    ready_s: float
    """Seconds from the stream's start to this chunk being queued."""


def _spec_from_native(s: Any) -> BlockSpec:
    return BlockSpec(**{f.name: getattr(s, f.name) for f in dataclasses.fields(BlockSpec)})


class EngineStream(Iterator[StreamChunk]):
    """One running stream: an iterator of :class:`StreamChunk` and a context manager.

    Iteration ends after the last block (or after :meth:`cancel`); leaving the ``with`` block or
    :meth:`close` cancels what is left and returns the stream's KV pages to the pool.
    """

    def __init__(self, engine: Engine, stream_id: int, num_blocks: int | None) -> None:
        self.engine = engine
        self.id = stream_id
        self.num_blocks = num_blocks
        self._cancelled = False
        self._closed = False

    def next_chunk(self, timeout_s: float | None = None) -> StreamChunk | None:
        """The next chunk, or None at the end of the stream.

        Raises:
            TimeoutError: nothing arrived within ``timeout_s`` seconds.
            StreamAbortedError: the stream was cancelled or failed in C++.
        """
        raw = self.engine.native.next_chunk(self.id, -1.0 if timeout_s is None else float(timeout_s))
        if raw is None:
            return None
        return StreamChunk(
            spec=_spec_from_native(raw.spec),
            video_latents=torch.from_numpy(raw.video_latents),
            audio_latents=torch.from_numpy(raw.audio_latents),
            timings=dict(raw.timings),
            ready_s=raw.ready_s,
        )

    def __next__(self) -> StreamChunk:
        if self._closed:
            raise StopIteration
        try:
            chunk = self.next_chunk()
        except StreamAbortedError:
            if self._cancelled:
                raise StopIteration from None
            raise
        if chunk is None:
            raise StopIteration
        return chunk

    def cancel(self) -> None:
        """Stop the stream between two passes; chunks not yet consumed are dropped."""
        self._cancelled = True
        if not self._closed:
            self.engine.native.cancel(self.id)

    def close(self) -> None:
        """Cancel if still running and release the stream (idempotent)."""
        if not self._closed:
            self._closed = True
            self._cancelled = True
            if self.engine._native is not None:
                self.engine._native.close_stream(self.id)

    def stats(self) -> dict[str, Any]:
        """state, blocks_done, passes_done, queued_chunks, reserved pages, committed blocks."""
        return dict(self.engine.native.stream_stats(self.id))

    def __enter__(self) -> EngineStream:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: nothing left to release
            self.close()


class Engine:
    """The C++ streaming engine with its model (see the module docstring)."""

    def __init__(self, loaded: Any, config: EngineConfig, package_dir: Path, native: Any) -> None:
        self.loaded = loaded
        self.config = config
        self.package_dir = package_dir
        self._native = native

    @classmethod
    def from_pretrained(cls, model_or_dir: Any = "default", config: EngineConfig | None = None) -> Engine:
        """Load a model (name, directory or ``LoadedModel``), compile or reuse its package, start.

        An engine directory written by ``omniforcing-rt export`` (it holds ``export.json``) is used
        as is, without compiling: its manifest is checked against ``config`` (None: the config it
        was exported with) and its artefacts against their recorded sha256.

        Raises:
            ConfigError: invalid config (every problem listed), or one an engine directory was not
                exported for.
            CheckpointError: an engine directory with a missing or corrupt artefact, or whose
                recomputed hash differs from its manifest.
            CacheCapacityError: the KV pools exceed ``kv_budget_bytes`` (nothing allocated).
            UnsupportedError: e.g. a CUDA config without CUDA.
        """
        from omniforcing_rt.compile.export import default_cache_dir, ensure_package, model_fingerprint, package_manifest
        from omniforcing_rt.export.manifest import is_export_dir
        from omniforcing_rt.models import load_model

        if is_export_dir(model_or_dir):
            return cls._from_export_dir(Path(model_or_dir), config)
        loaded = model_or_dir if hasattr(model_or_dir, "model") else load_model(model_or_dir)
        cfg = (config or EngineConfig()).resolve(loaded.stream)
        conv = loaded.stream.convention
        config_hash = cfg.config_hash(model_fingerprint(loaded.model, conv), torch.__version__)
        # Size the pools first: an over-budget config fails before compiling or allocating.
        _C.plan_kv_cache(cfg.to_json(), json.dumps(package_manifest(loaded.model, conv, cfg, config_hash)))
        cache = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
        export_model = loaded.model
        if cfg.dtype != "float32" or cfg.device != "cpu":
            import copy

            export_model = copy.deepcopy(loaded.model)
        package = ensure_package(export_model, conv, cfg, config_hash, cache)
        native = _C.Engine(cfg.to_json(), str(package))
        log.debug("engine %s ready: %s", config_hash, dict(native.stats()))
        return cls(loaded, cfg, package, native)

    @classmethod
    def _from_export_dir(cls, root: Path, config: EngineConfig | None) -> Engine:
        from omniforcing_rt.export.load import load_export

        ex = load_export(root, config)
        _C.plan_kv_cache(ex.config.to_json(), ex.package_manifest_json())
        native = _C.Engine(ex.config.to_json(), str(ex.package_dir))
        log.debug("engine %s ready from %s: %s", ex.manifest.config_hash, root, dict(native.stats()))
        return cls(ex.loaded, ex.config, ex.package_dir, native)

    # ------------------------------------------------------------------------------ streams
    @property
    def config_hash(self) -> str:
        """Hash naming the compiled package (EngineConfig.config_hash)."""
        return str(self.native.config_hash)

    def _layout_kw(self) -> dict[str, Any]:
        cfg = self.config
        assert cfg.latent_grid_hw is not None and cfg.block_frames is not None  # resolved
        return {
            "tokens_per_frame": cfg.latent_grid_hw[0] * cfg.latent_grid_hw[1], "block_frames": cfg.block_frames,
            "first_block_frames": cfg.first_block_frames, "audio_sink_tokens": self.loaded.model.config.audio_sink_tokens,
        }  # fmt: skip

    def layout(self, seconds: float | None) -> BlockLayout | None:
        """The block layout of a stream of ``seconds`` (None: open-ended); ConfigError for a
        duration that is not a whole number of blocks."""
        if seconds is None:
            return None
        return BlockLayout.for_seconds(self.config.layout_kind, seconds, **self._layout_kw())

    def layout_for_blocks(self, num_blocks: int) -> BlockLayout:
        """The block layout of a stream of ``num_blocks`` blocks."""
        return BlockLayout.create(self.config.layout_kind, num_blocks, **self._layout_kw())

    def text_context(self, prompt_or_embeddings: str | PromptFeatures | TextContext) -> TextContext:
        """Per-prompt text K/V (once per prompt, eager PyTorch, off the hot loop)."""
        p = prompt_or_embeddings
        if isinstance(p, TextContext):
            return p
        if isinstance(p, str):
            p = self.loaded.prompt_features(p)
        if not isinstance(p, PromptFeatures):
            raise InputError(f"stream() takes a prompt string, PromptFeatures or TextContext, got {type(p).__name__}")
        with torch.no_grad():
            return self.loaded.model.encode_text(p.video, p.audio, p.mask)

    def _native_text(self, text: TextContext) -> list[torch.Tensor]:
        dt, dev = _DTYPES[self.config.dtype], torch.device(self.config.device)

        def stack(pairs: list[tuple[torch.Tensor, torch.Tensor]], i: int) -> torch.Tensor:
            if pairs[0][i].shape[0] != 1:
                raise InputError(f"the engine streams batch 1, text K/V have batch {pairs[0][i].shape[0]}")
            # detach: a TextContext built with autograd on (e.g. right after training) would
            # otherwise fail inside the bindings, which cannot take tensors that require grad
            return torch.stack([p[i][0] for p in pairs]).detach().to(dev, dt).contiguous()

        lt = text.video_kv[0][0].shape[1]
        mask = text.mask if text.mask is not None else torch.zeros(1, 1, 1, lt)
        mask = mask.detach().reshape(1, 1, 1, lt).to(dev, dt).contiguous()
        return [
            stack(text.video_kv, 0),
            stack(text.video_kv, 1),
            stack(text.audio_kv, 0),
            stack(text.audio_kv, 1),
            mask,
        ]

    def stream(
        self, prompt_or_embeddings: str | PromptFeatures | TextContext, seed: int = 0, seconds: float | None = None
    ) -> EngineStream:
        """Start a stream and return it at once (generation proceeds in C++).

        Args:
            prompt_or_embeddings: a prompt (encoded by the model's text path, or hashed for models
                without one), caption features, or an already encoded TextContext.
            seed: noise seed (any int; taken modulo 2**64 as by pipeline/noise.py).
            seconds: duration, a valid block duration (e.g. 5 -> 5.04 s); None streams until
                cancelled (needs finite windows).

        Raises:
            CacheCapacityError: no room for the stream's pages (max_streams reached, or a window
                of None with a stream longer than max_stream_s).
        """
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InputError(f"seed must be an int, got {type(seed).__name__}")
        layout = self.layout(seconds)
        tensors = self._native_text(self.text_context(prompt_or_embeddings))
        num_blocks = layout.num_blocks if layout is not None else 0
        sid = self.native.start_stream(*tensors, seed & ((1 << 64) - 1), num_blocks)
        return EngineStream(self, sid, layout.num_blocks if layout is not None else None)

    def stats(self) -> dict[str, Any]:
        """Pool sizes and free pages, live streams, blocks generated."""
        return dict(self.native.stats())

    @property
    def native(self) -> Any:
        """The ``_C.Engine``; EngineDeadError once :meth:`close` was called."""
        if self._native is None:
            raise EngineDeadError("the engine was closed")
        return self._native

    def close(self) -> None:
        """Stop the worker and free the pools once no call is in flight (the engine is unusable
        afterwards; streams still open raise EngineDeadError)."""
        self._native = None

    @property
    def media_rates(self) -> tuple[int, int]:
        """(video frames per second, audio samples per second) of chunk timestamps."""
        return VIDEO_FPS, AUDIO_SAMPLE_RATE
