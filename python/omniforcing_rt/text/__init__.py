"""Text conditioning: Gemma-3 (via Hugging Face ``transformers``) -> LTX-2 video / audio contexts.

- :mod:`~omniforcing_rt.text.gemma`: tokenizer + Gemma-3 language model -> all hidden states;
- :mod:`~omniforcing_rt.text.encoder`: :class:`PromptEncoder`, hidden states -> feature extractor
  -> the two embeddings connectors -> :class:`~omniforcing_rt.pipeline.prompt.PromptFeatures`,
  with an LRU cache of encoded prompts.
"""

from omniforcing_rt.text.encoder import PromptEncoder, TextBackbone
from omniforcing_rt.text.gemma import GemmaTextBackbone

__all__ = ["GemmaTextBackbone", "PromptEncoder", "TextBackbone"]
