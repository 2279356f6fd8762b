"""Block-causal attention rules as objects built from per-token block ids.

The rule of every temporal attention (video self, audio self, A->V, V->A) is one comparison: a query
may attend to a key iff ``block(key) <= block(query)`` (spec B.2). Audio sink tokens belong to block 0,
so every audio query and every A->V query sees them. Text attention is never masked.

The streaming path never builds a mask: a block attends to its cached history plus itself, which is
exactly this rule. Dense boolean matrices (:meth:`BlockCausalMasks.dense`) exist only for the offline
full-sequence oracle and for tests; kernels consume the block ids directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from omniforcing_rt.errors import InputError
from omniforcing_rt.pipeline.layout import BlockLayout

__all__ = ["BlockCausalMask", "BlockCausalMasks"]


@dataclass(frozen=True)
class BlockCausalMask:
    """One attention's rule: query block ids and key block ids (int64, sequence order)."""

    query_blocks: torch.Tensor
    """[Tq] block id of each query token."""
    key_blocks: torch.Tensor
    """[Tk] block id of each key token."""
    window: int | None = None
    """History blocks visible besides block 0 and the query's own block (None = all): the rolling
    cache's rule, so the offline oracle can reproduce a windowed stream."""

    def __post_init__(self) -> None:
        for name in ("query_blocks", "key_blocks"):
            t = getattr(self, name)
            if t.ndim != 1 or t.dtype != torch.int64:
                raise InputError(f"{name} must be a 1-D int64 tensor, got {tuple(t.shape)} {t.dtype}")

    def dense(self) -> torch.Tensor:
        """[Tq, Tk] bool, True where the query may attend to the key (oracle/tests only)."""
        q, k = self.query_blocks[:, None], self.key_blocks[None, :]
        visible = q >= k
        if self.window is not None:
            visible &= (k == 0) | (k == q) | (k >= q - self.window)
        return visible

    def visible_keys(self, query_block: int) -> int:
        """How many keys a query of ``query_block`` sees (keys are in block order)."""
        return int((self.key_blocks <= query_block).sum())


@dataclass(frozen=True)
class BlockCausalMasks:
    """The four temporal masks of one clip, keyed like the caches."""

    video_self: BlockCausalMask
    audio_self: BlockCausalMask
    a2v: BlockCausalMask
    v2a: BlockCausalMask

    @classmethod
    def from_layout(
        cls, layout: BlockLayout, video_window: int | None = None, audio_window: int | None = None
    ) -> BlockCausalMasks:
        """Masks for a whole clip of ``layout`` (audio ids include the sinks, first).

        Windows apply to the keys' modality (video keys in video self and V->A, audio keys in
        audio self and A->V), matching the per-modality rolling cache.
        """
        v = layout.video_token_block_ids()
        a = layout.audio_token_block_ids()
        return cls(
            video_self=BlockCausalMask(v, v, video_window),
            audio_self=BlockCausalMask(a, a, audio_window),
            a2v=BlockCausalMask(v, a, audio_window),
            v2a=BlockCausalMask(a, v, video_window),
        )

    def dense(self) -> dict[str, torch.Tensor]:
        """Dense bool masks by cache name, for the offline oracle."""
        return {name: getattr(self, name).dense() for name in ("video_self", "audio_self", "a2v", "v2a")}
