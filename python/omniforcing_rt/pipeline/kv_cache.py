"""Reference rolling KV cache: six caches per layer, per-modality windows, a pinned first block.

Layout (the Python twin of ``csrc/kv_cache``): for every layer and each of the four temporal caches
(``video_self``, ``v2a`` hold video tokens; ``audio_self``, ``a2v`` hold audio tokens, sinks first)
the cache keeps the *committed* blocks in block order, each as one (K, V) pair of [B, tokens, D],
plus the *in-flight* (K, V) of the block being generated. Text K/V (``video_text``, ``audio_text``)
are computed once per prompt and live in the :class:`TextContext`.

* A pass over block k writes its K/V as in-flight (overwriting the previous pass's) and attends to
  every committed block with index < k, then to itself: block-causal attention without a mask.
* :meth:`KvCacheSet.commit` turns the in-flight entries into block k's committed entries (the
  context-refresh pass writes the values that stay) and evicts whole blocks beyond the window.
* Block 0 (the Global Prefix in the paper layout, and the sinks) is pinned: never evicted.
* Windows are per modality, counted in blocks of history besides the pinned block, so the video
  and audio streams can keep different horizons. ``None`` keeps everything (the release-era
  full-length cache, the baseline the engine is measured against).

Rebuilding a block's entries (prompt switch re-cache) uses the same path: a pass for an already
committed block j attends to committed blocks < j and replaces block j's entries on commit.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

from omniforcing_rt.errors import ConfigError, InputError
from omniforcing_rt.model.transformer import TEMPORAL_CACHES, TextContext

__all__ = ["CACHE_MODALITY", "CachePolicy", "KvCacheSet"]

CACHE_MODALITY = {"video_self": "video", "v2a": "video", "audio_self": "audio", "a2v": "audio"}
"""Which token stream each temporal cache holds."""


@dataclass(frozen=True, kw_only=True)
class CachePolicy:
    """Retention policy of the temporal caches."""

    video_window_blocks: int | None = None
    """History blocks kept for video caches besides the pinned block 0 (None = all)."""
    audio_window_blocks: int | None = None
    """History blocks kept for audio caches besides the pinned block 0 (None = all)."""

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be >= 1 or None, got {v}"
            for name, v in (
                ("video_window_blocks", self.video_window_blocks),
                ("audio_window_blocks", self.audio_window_blocks),
            )
            if v is not None and (not isinstance(v, int) or v < 1)
        ]
        if problems:
            raise ConfigError("invalid cache policy", problems)

    def window(self, modality: str) -> int | None:
        return self.video_window_blocks if modality == "video" else self.audio_window_blocks


class KvCacheSet:
    """All temporal caches of one stream (see module docstring)."""

    def __init__(self, num_layers: int, policy: CachePolicy | None = None) -> None:
        self.policy = policy or CachePolicy()
        self.num_layers = num_layers
        self._committed: list[dict[str, OrderedDict[int, tuple[torch.Tensor, torch.Tensor]]]] = [
            {name: OrderedDict() for name in TEMPORAL_CACHES} for _ in range(num_layers)
        ]
        self._inflight: list[dict[str, tuple[torch.Tensor, torch.Tensor]]] = [{} for _ in range(num_layers)]
        self._block: int | None = None
        self.text: TextContext | None = None

    # ------------------------------------------------------------------------------ passes
    def begin_pass(self, block: int) -> None:
        """Prepare a pass over ``block`` (a new block, or a committed one being rebuilt)."""
        if block < 0:
            raise InputError(f"block must be >= 0, got {block}")
        self._block = block
        for d in self._inflight:
            d.clear()

    def hook(self, layer: int, name: str, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's KV hook: store the block's K/V as in-flight, return history + block."""
        if self._block is None:
            raise InputError("begin_pass() must be called before a pass")
        self._inflight[layer][name] = (k, v)
        hist = [kv for b, kv in self._committed[layer][name].items() if b < self._block]
        if not hist:
            return k, v
        return torch.cat([h[0] for h in hist] + [k], dim=1), torch.cat([h[1] for h in hist] + [v], dim=1)

    def commit(self) -> None:
        """Make the last pass's K/V the committed entries of its block, then evict."""
        if self._block is None or not self._inflight[0]:
            raise InputError("commit() needs a finished pass")
        block = self._block
        for layer in range(self.num_layers):
            for name, kv in self._inflight[layer].items():
                entries = self._committed[layer][name]
                entries[block] = (kv[0].detach(), kv[1].detach())
                self._committed[layer][name] = OrderedDict(sorted(entries.items()))
            self._evict(layer)
            # The committed entries alias these tensors; dropping the in-flight view keeps
            # nbytes() from counting them twice.
            self._inflight[layer].clear()
        self._block = None

    def _evict(self, layer: int) -> None:
        for name, entries in self._committed[layer].items():
            window = self.policy.window(CACHE_MODALITY[name])
            if window is None:
                continue
            history = [b for b in entries if b != 0]
            for b in history[: max(0, len(history) - window)]:
                del entries[b]

    # ----------------------------------------------------------------------------- queries
    def blocks(self, name: str = "video_self") -> list[int]:
        """Committed block ids of one cache (layer 0)."""
        return list(self._committed[0][name])

    def entries(self, layer: int, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """All committed K/V of one cache concatenated in block order, or None when empty."""
        items = list(self._committed[layer][name].values())
        if not items:
            return None
        return torch.cat([k for k, _ in items], dim=1), torch.cat([v for _, v in items], dim=1)

    def inflight(self, layer: int, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The K/V written by the last pass for one cache."""
        return self._inflight[layer].get(name)

    def nbytes(self) -> int:
        """Bytes held by all six caches of all layers (temporal committed + in-flight + text)."""
        total = 0
        for layer in range(self.num_layers):
            for entries in self._committed[layer].values():
                total += sum(k.nbytes + v.nbytes for k, v in entries.values())
            total += sum(k.nbytes + v.nbytes for k, v in self._inflight[layer].values())
        if self.text is not None:
            for kv in (*self.text.video_kv, *self.text.audio_kv):
                total += kv[0].nbytes + kv[1].nbytes
        return total
