"""Regenerate the embedded ``default`` model (seeded random weights, real LTX-2 architecture).

Run: ``python scripts/make_default_model.py`` (about a second; output is bit-identical per seed).
"""

from __future__ import annotations

import argparse

from omniforcing_rt.model.config import ModelConfig
from omniforcing_rt.model.transformer import AVTransformer
from omniforcing_rt.models import DEFAULT_MODEL_DIR, init_random_weights, write_model_dir

CONFIG = ModelConfig(
    num_layers=2,
    num_attention_heads=4,
    attention_head_dim=16,
    in_channels=128,
    out_channels=128,
    cross_attention_dim=64,
    caption_channels=64,
    audio_num_attention_heads=4,
    audio_attention_head_dim=8,
    audio_in_channels=128,
    audio_out_channels=128,
    audio_cross_attention_dim=32,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(DEFAULT_MODEL_DIR))
    args = ap.parse_args()
    model = AVTransformer(CONFIG)
    init_random_weights(model, args.seed)
    info = {
        "name": "default",
        "description": "Seeded random weights of the LTX-2 AV architecture at toy size (untrained).",
        "seed": args.seed,
        "latent_grid_hw": [4, 6],
        "pixel_size_hw": [128, 192],
        "layout": "release",
        "denoising_step_list": [1000, 909, 725, 421, 0],
        "convention": "student",
        "text_tokens": 16,
    }
    from pathlib import Path

    write_model_dir(Path(args.out), model, info)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
