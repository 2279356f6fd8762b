"""Prompt -> :class:`~omniforcing_rt.pipeline.prompt.PromptFeatures`: the LTX-2 text path.

Stages (spec-media.md 5; spec A.5):

1. :class:`~omniforcing_rt.text.gemma.GemmaTextBackbone`: tokenizer (left padding / truncation to
   ``max_length``) and Gemma-3 through Hugging Face ``transformers`` -> all hidden states
   (embeddings + every layer), N tensors [1, L, D];
2. :class:`~omniforcing_rt.media.feature_extractor.GemmaFeatureExtractor`: per-layer masked
   min-max normalisation, flatten ``d * N + l``, ``aggregate_embed`` (D * N -> D) -> [1, L, D];
3. the video and the audio :class:`~omniforcing_rt.media.text_connector.Embeddings1DConnector`
   on the same features (padding replaced by registers) -> two contexts [1, L, D], mask all ones.

The projection and the connectors load from the LTX-2 checkpoint (``text_embedding_projection.*``,
``model.diffusion_model.{video,audio}_embeddings_connector.*``, strictly, with the header's RoPE
convention). Encoded prompts are kept in an LRU cache keyed by the stripped prompt, so switching
back to a recent prompt costs nothing (Gemma-3-12B takes seconds per prompt).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch

from omniforcing_rt.errors import ConfigError, InputError
from omniforcing_rt.media import weights as mw
from omniforcing_rt.media.feature_extractor import GemmaFeatureExtractor
from omniforcing_rt.media.text_connector import Embeddings1DConnector, encode_text_contexts
from omniforcing_rt.pipeline.prompt import PromptFeatures
from omniforcing_rt.text.gemma import GemmaTextBackbone

__all__ = ["PromptEncoder", "TextBackbone"]


class TextBackbone(Protocol):
    """What :class:`PromptEncoder` needs from the language model (``GemmaTextBackbone`` or a test double)."""

    max_length: int
    hidden_size: int
    num_hidden_states: int

    def tokenize(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]: ...

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Sequence[torch.Tensor]: ...


class PromptEncoder:
    """Gemma-3 + feature extractor + two embeddings connectors, with an LRU cache of prompts.

    Args:
        backbone: tokenizer + language model.
        feature_extractor: the ``aggregate_embed`` projection.
        video_connector, audio_connector: the two embeddings connectors.
        cache_size: prompts kept (0 disables the cache).

    Raises:
        ConfigError: the widths / counts of the parts disagree, or the sequence length is not a
            multiple of the connectors' register count.
    """

    def __init__(
        self,
        backbone: TextBackbone,
        feature_extractor: GemmaFeatureExtractor,
        video_connector: Embeddings1DConnector,
        audio_connector: Embeddings1DConnector,
        *,
        cache_size: int = 16,
    ) -> None:
        self.backbone = backbone
        self.feature_extractor = feature_extractor.eval()
        self.video_connector = video_connector.eval()
        self.audio_connector = audio_connector.eval()
        self.cache_size = max(0, cache_size)
        self._cache: OrderedDict[str, PromptFeatures] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._check()

    def _check(self) -> None:
        fe, b = self.feature_extractor.config, self.backbone
        p = []
        if fe.hidden_size != b.hidden_size:
            p.append(f"Gemma hidden size {b.hidden_size} != feature extractor width {fe.hidden_size}")
        if fe.num_hidden_states != b.num_hidden_states:
            p.append(f"Gemma gives {b.num_hidden_states} hidden states, the projection expects {fe.num_hidden_states}")
        for name, conn in (("video", self.video_connector), ("audio", self.audio_connector)):
            if conn.config.inner_dim != fe.hidden_size:
                p.append(f"{name} connector width {conn.config.inner_dim} != feature width {fe.hidden_size}")
            if b.max_length % conn.config.num_learnable_registers:
                p.append(
                    f"max_length {b.max_length} is not a multiple of the {name} connector's "
                    f"{conn.config.num_learnable_registers} registers"
                )
        if p:
            raise ConfigError("text encoder parts do not fit together", p)

    @classmethod
    def from_pretrained(
        cls,
        gemma_dir: str | Path,
        ltx_checkpoint: str | Path | Sequence[str | Path],
        *,
        max_length: int = 1024,
        dtype: torch.dtype = torch.bfloat16,
        device: str | torch.device = "cpu",
        max_pos: int | None = None,
        cache_size: int = 16,
    ) -> PromptEncoder:
        """Gemma from a local Hugging Face directory, projection + connectors from the LTX-2 file.

        Args:
            gemma_dir: directory with ``config.json``, the tokenizer and the weights.
            ltx_checkpoint: the LTX-2 safetensors file (or shards) holding the text-side keys.
            max_length: token count (1024 for LTX-2).
            dtype: dtype of every part (the pipeline runs bf16).
            max_pos: override of the header's connector RoPE ``max_pos``.
        """
        backbone = GemmaTextBackbone.from_pretrained(gemma_dir, max_length=max_length, dtype=dtype, device=device)
        kw = dict(dtype=dtype, device=device)
        extractor = mw.load_feature_extractor(ltx_checkpoint, **kw)
        video, audio = mw.load_text_connectors(ltx_checkpoint, max_pos=max_pos, **kw)
        return cls(backbone, extractor, video, audio, cache_size=cache_size)

    @property
    def max_length(self) -> int:
        """Text tokens per prompt (L)."""
        return self.backbone.max_length

    @property
    def width(self) -> int:
        """Context width D (the transformer's ``caption_channels``)."""
        return self.feature_extractor.config.hidden_size

    def encode(self, prompt: str) -> PromptFeatures:
        """Both contexts of ``prompt`` ([1, L, D] each, mask [1, L] all ones), cached per prompt."""
        if not isinstance(prompt, str):
            raise InputError(f"prompt must be a string, got {type(prompt).__name__}")
        key = prompt.strip()
        with self._lock:
            if key in self._cache:
                self.hits += 1
                self._cache.move_to_end(key)
                return self._cache[key]
            self.misses += 1
            feats = self.encode_tokens(*self.backbone.tokenize(prompt))
            if self.cache_size:
                self._cache[key] = feats
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            return feats

    def encode_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> PromptFeatures:
        """Contexts from token ids [1, L] and their mask [1, L] (no cache)."""
        if input_ids.shape != (1, self.max_length) or attention_mask.shape != input_ids.shape:
            raise InputError(
                f"input_ids and attention_mask must be [1, {self.max_length}], "
                f"got {tuple(input_ids.shape)} and {tuple(attention_mask.shape)}"
            )
        if not bool(attention_mask.any()):
            raise InputError("the prompt has no tokens")
        return self.features_from_hidden_states(self.backbone.hidden_states(input_ids, attention_mask), attention_mask)

    def features_from_hidden_states(
        self, hidden_states: Sequence[torch.Tensor] | torch.Tensor, attention_mask: torch.Tensor
    ) -> PromptFeatures:
        """Feature extractor + connectors on N hidden states [B, L, D] (or stacked [N, B, L, D]).

        Returns:
            PromptFeatures(video [B, L, D], audio [B, L, D], mask [B, L] int64 ones).
        """
        dev = self.feature_extractor.aggregate_embed.weight.device
        mask = attention_mask.to(dev)
        with torch.inference_mode():
            features = self.feature_extractor([h.to(dev) for h in hidden_states], mask)
            ctx = encode_text_contexts(features, mask, self.video_connector, self.audio_connector)
        return PromptFeatures(ctx.video, ctx.audio, ctx.attention_mask)

    def cache_info(self) -> dict[str, int]:
        """Hits, misses and current size of the prompt cache."""
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "size": len(self._cache), "capacity": self.cache_size}
