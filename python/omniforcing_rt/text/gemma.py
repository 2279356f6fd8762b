"""Gemma-3 driven through Hugging Face ``transformers``: prompt -> token ids -> all hidden states.

Gemma itself is not re-implemented: the tokenizer and the language model are loaded with
``AutoTokenizer`` / ``AutoModel`` ``from_pretrained(directory, local_files_only=True)`` from a
directory the user provides (for LTX-2: ``gemma-3-12b-it-qat-q4_0-unquantized``), exactly as the
official text encoder does (spec-media.md 5.1):

- tokenizer: padding side **left**, pad token = EOS only when the tokenizer has none,
  ``padding="max_length"``, ``truncation=True``, ``max_length`` (1024 for LTX-2), default special
  tokens (BOS added), the prompt ``.strip()``-ped first; batch 1;
- model call: ``model(input_ids, attention_mask, output_hidden_states=True)`` with no
  ``position_ids``, so left-padded tokens keep their absolute positions (the first real token
  sits at ``max_length - n``);
- output: ``hidden_states``, a tuple of ``num_layers + 1`` tensors [1, L, D] (scaled embeddings,
  the residual stream after every layer but the last, then the final-norm output).

A ``gemma3`` directory (``Gemma3ForConditionalGeneration`` checkpoint with a vision tower) loads
as ``Gemma3Model`` (the vision tower is loaded but never run: no image input); a ``gemma3_text``
directory loads as ``Gemma3TextModel``. No logits are computed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from omniforcing_rt.errors import CheckpointError, ConfigError, InputError, UnsupportedError

__all__ = ["SUPPORTED_MODEL_TYPES", "GemmaTextBackbone"]

log = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("gemma3", "gemma3_text")
"""``config.json`` model types this loader accepts."""


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - transformers is a dependency
        raise UnsupportedError("text encoder", [f"Hugging Face transformers is not installed ({e})"]) from None
    return transformers


class GemmaTextBackbone:
    """A Hugging Face tokenizer + Gemma-3 language model returning every hidden state.

    Args:
        tokenizer: a ``transformers`` tokenizer (its padding side is set to left here).
        model: a Gemma-3 model whose forward accepts ``output_hidden_states=True``.
        max_length: padded / truncated token count (1024 for LTX-2).
    """

    def __init__(self, tokenizer: Any, model: Any, max_length: int = 1024) -> None:
        if max_length < 1:
            raise ConfigError("invalid text backbone", [f"max_length must be >= 1, got {max_length}"])
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ConfigError("invalid tokenizer", ["it has neither a pad token nor an EOS token"])
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        self.model = model.eval()
        self.max_length = max_length
        text_cfg = model.config.get_text_config()
        self.hidden_size = int(text_cfg.hidden_size)
        """Gemma hidden size D (3840 for Gemma-3-12B)."""
        self.num_hidden_states = int(text_cfg.num_hidden_layers) + 1
        """Hidden states returned per call (49 for Gemma-3-12B)."""

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        *,
        max_length: int = 1024,
        dtype: torch.dtype = torch.bfloat16,
        device: str | torch.device = "cpu",
    ) -> GemmaTextBackbone:
        """Load tokenizer and model from a local Hugging Face directory (never downloads).

        Raises:
            CheckpointError: not a directory, or transformers cannot read it.
            UnsupportedError: a model type other than Gemma-3.
        """
        root = Path(directory)
        if not (root / "config.json").is_file():
            raise CheckpointError(f"{root} is not a Hugging Face model directory (no config.json)")
        tf = _transformers()
        try:
            config = tf.AutoConfig.from_pretrained(root, local_files_only=True)
        except (OSError, ValueError) as e:
            raise CheckpointError(f"cannot read the Gemma config in {root}: {e}") from None
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise UnsupportedError(
                "text encoder", [f"{root}: model_type {config.model_type!r}, expected one of {SUPPORTED_MODEL_TYPES}"]
            )
        try:
            tokenizer = tf.AutoTokenizer.from_pretrained(root, local_files_only=True)
            model = tf.AutoModel.from_pretrained(root, local_files_only=True, dtype=dtype)
        except (OSError, ValueError) as e:
            raise CheckpointError(f"cannot load the Gemma tokenizer / model from {root}: {e}") from None
        log.info("loaded %s (%s) from %s", type(model).__name__, dtype, root)
        return cls(tokenizer, model.to(device), max_length=max_length)

    @property
    def device(self) -> torch.device:
        """Where the model's weights live."""
        return next(self.model.parameters()).device

    def tokenize(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded / truncated token ids and mask.

        Returns:
            (input_ids [1, max_length] int64, attention_mask [1, max_length] int64; 1 = real token).
        """
        if not isinstance(prompt, str):
            raise InputError(f"prompt must be a string, got {type(prompt).__name__}")
        enc = self.tokenizer(
            prompt.strip(), max_length=self.max_length, padding="max_length", truncation=True, return_tensors="pt"
        )
        return enc["input_ids"].to(torch.int64), enc["attention_mask"].to(torch.int64)

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run the language model.

        Args:
            input_ids: [1, L] token ids (left padded).
            attention_mask: [1, L] (1 = real token).

        Returns:
            ``num_hidden_states`` tensors [1, L, D] (embeddings, layers 1..N-1, final-norm output).
        """
        if input_ids.ndim != 2 or input_ids.shape != attention_mask.shape:
            raise InputError(
                f"input_ids {tuple(input_ids.shape)} and mask {tuple(attention_mask.shape)} must be [B, L]"
            )
        dev = self.device
        with torch.inference_mode():
            out = self.model(
                input_ids=input_ids.to(dev), attention_mask=attention_mask.to(dev), output_hidden_states=True
            )
        states = tuple(out.hidden_states)
        if len(states) != self.num_hidden_states:
            raise CheckpointError(f"Gemma returned {len(states)} hidden states, expected {self.num_hidden_states}")
        return states
