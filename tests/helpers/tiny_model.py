"""Shared test helpers: a tiny model config, seeded random init, fixture paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from omniforcing_rt.model.config import ModelConfig
from omniforcing_rt.model.transformer import AVTransformer

# Tiny tensors: intra-op threads only add contention on the shared 2-core CI box.
torch.set_num_threads(1)

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
TINY_REF = FIXTURES / "ltx2_tiny_reference"
KEYS_19B = FIXTURES / "ltx2_19b_transformer_keys.json"

TINY = dict(
    num_layers=2, num_attention_heads=2, attention_head_dim=8, in_channels=8, out_channels=8,
    cross_attention_dim=16, caption_channels=12, audio_num_attention_heads=2, audio_attention_head_dim=4,
    audio_in_channels=8, audio_out_channels=8, audio_cross_attention_dim=8,
)  # fmt: skip


def tiny_config(**over) -> ModelConfig:
    return ModelConfig(**{**TINY, **over})


def randomize(model: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


def tiny_model(seed: int = 0, **over) -> AVTransformer:
    return randomize(AVTransformer(tiny_config(**over)), seed)


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"fixture {path} is absent (shared fixtures not checked out)")
    return path
