"""A streaming model as a world clip generator: caption + seed in, decoded frames + audio out.

:func:`streaming_clip_generator` wraps :class:`~omniforcing_rt.pipeline.stream.StreamingGenerator`
and :class:`~omniforcing_rt.media.decode_worker.BlockDecoder` (decoded on the calling thread, block
by block, exactly as ``omniforcing-rt generate`` decodes them on its worker) into the
``generate(caption, seed)`` callable of :mod:`omniforcing_rt.world.evaluate`. ``ttfc_s`` is the
wall time from the call until the first block's media (frames and samples) was final, which with
the default one-block video look-ahead is after block 1 has been generated and decoded; decode
time is included because nothing overlaps it here (the CLI's decode thread would hide part of it).
"""

from __future__ import annotations

import time

import numpy as np

from omniforcing_rt.errors import ConfigError
from omniforcing_rt.world.evaluate import ClipGenerator
from omniforcing_rt.world.scene import WorldConfig

__all__ = ["streaming_clip_generator"]


def streaming_clip_generator(model: str, config: WorldConfig, *, threads: int | None = None) -> ClipGenerator:
    """Load ``model`` (name or directory, with media decoders) and return its clip generator."""
    import torch

    from omniforcing_rt.media.decode_worker import BlockDecoder
    from omniforcing_rt.models import load_model
    from omniforcing_rt.pipeline.layout import BlockLayout
    from omniforcing_rt.pipeline.stream import StreamingGenerator

    if threads:
        torch.set_num_threads(threads)
    loaded = load_model(model, media=True, text_encoder=True)
    if loaded.media is None:
        raise ConfigError(f"model {loaded.name!r} has no media decoders", ["the world evaluation scores decoded media"])
    cfg = loaded.stream
    hw = loaded.media.frame_size(cfg.latent_grid_hw)
    if hw != (config.height, config.width):
        raise ConfigError(f"model {loaded.name!r} does not fit the world",
                          [f"it decodes {hw[0]} x {hw[1]} frames, the world is {config.height} x {config.width}"])  # fmt: skip
    layout = BlockLayout.for_video_latents(
        cfg.layout_kind, 1 + (config.frames - 1) // 8, cfg.latent_grid_hw[0] * cfg.latent_grid_hw[1],
        block_frames=cfg.block_frames, first_block_frames=cfg.first_block_frames,
    )  # fmt: skip
    gen = StreamingGenerator(loaded.model, cfg)

    def generate(caption: str, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        t0 = time.perf_counter()
        with torch.inference_mode():
            feats = loaded.prompt_features(caption)
            text = loaded.model.encode_text(feats.video, feats.audio, feats.mask)
            decoder = BlockDecoder(loaded.media, loaded.video_policy(), origin=t0)
            blocks, ttfc = [], None
            for res in gen.stream(text, seed=seed, num_blocks=layout.num_blocks):
                blocks += decoder.push(res.spec, res.video_latents, res.audio_latents)
                if blocks and ttfc is None:
                    ttfc = time.perf_counter() - t0
            blocks += decoder.finish()
        wall = time.perf_counter() - t0
        frames = torch.cat([b.frames for b in blocks]).numpy()
        audio = torch.cat([b.audio for b in blocks], dim=1).float().numpy()
        return frames, audio, {"seconds": wall, "ttfc_s": wall if ttfc is None else ttfc}

    return generate
