"""Helpers of the distillation tests: the tiny test configuration and the 2-process worker."""

from __future__ import annotations

import torch

from omniforcing_rt.distill import build_config, run_stage

TEST_MODEL = dict(
    num_layers=2, num_attention_heads=2, attention_head_dim=8, in_channels=8, out_channels=8,
    cross_attention_dim=16, caption_channels=12, audio_num_attention_heads=2, audio_attention_head_dim=4,
    audio_in_channels=8, audio_out_channels=8, audio_cross_attention_dim=8,
)  # fmt: skip
"""The model tests' tiny architecture (tests/model/_helpers.py)."""

TEST_OVERRIDES = dict(
    synthetic_teacher=TEST_MODEL,
    text_tokens=4,
    video_latents=7,  # release: 4 + 3 (2 blocks); paper: 1 + 3 + 3 (3 blocks)
    pairs={"num_pairs": 8, "shard_size": 4, "batch_size": 8},
)


def tiny_config(stage: str, **over):
    """The tiny preset shrunk to the test model; ``over`` are (one level deep-merged) top-level overrides."""
    kw = {**TEST_OVERRIDES}
    for k, v in over.items():
        kw[k] = {**kw[k], **v} if isinstance(v, dict) and isinstance(kw.get(k), dict) else v
    return build_config(stage, None, "tiny", **kw)


def sharded_worker(jobs: list[tuple[dict, str]]) -> None:
    """Run each (config dict, out dir) in this process of a 2-process group (initialised once)."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        for cfg, out in jobs:
            run_stage(build_config(cfg["stage"], cfg), out, progress=False)
    finally:
        dist.destroy_process_group()
