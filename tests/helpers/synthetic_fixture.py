"""Write a transformer fixture in the shared format from OUR model, for configurations no official
fixture covers (other sizes, the paper layout, audio sinks).

The outputs are our own predictions, so a check of such a fixture proves that ``check-fixture``
takes every size and option from the fixture itself (nothing hard-coded to the tiny example) and
that the streaming replay, the masked forward and the cache keys agree with each other under that
configuration. Parity with the official code is proven separately on the shared fixture.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from omniforcing_rt.checks.stream_fixture import streaming_predictions
from omniforcing_rt.checks.transformer_fixture import TransformerFixture, _bidir, _masked
from omniforcing_rt.model.config import ModelConfig
from omniforcing_rt.model.positions import audio_positions, video_positions
from omniforcing_rt.model.transformer import AVTransformer
from omniforcing_rt.models import init_random_weights
from omniforcing_rt.pipeline.layout import BlockLayout
from omniforcing_rt.pipeline.schedule import renoise, student_sigmas
from omniforcing_rt.pipeline.stream import StreamConfig, StreamingGenerator


def write_fixture(
    root: Path, cfg: ModelConfig, *, grid_hw: tuple[int, int], paper: bool, blocks: int, text_len: int, seed: int = 0
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = AVTransformer(cfg)
    init_random_weights(model, seed)
    state = {"model.diffusion_model." + k: v.contiguous() for k, v in model.state_dict().items()}
    meta_cfg = cfg.to_metadata()
    meta_cfg.pop("audio_sink_tokens", None)
    save_file(state, str(root / "weights.safetensors"), metadata={"config": json.dumps({"transformer": meta_cfg})})
    h, w = grid_hw
    causal = {"video_frame_seqlen": h * w, "num_frame_per_block": 3, "num_audio_sink_tokens": cfg.audio_sink_tokens}
    if not paper:
        causal["num_frame_per_block_first"] = 4
    layout = BlockLayout.create("paper" if paper else "release", blocks, h * w, audio_sink_tokens=cfg.audio_sink_tokens)
    steps = [1000, 909, 725, 421, 0]
    io: dict[str, torch.Tensor] = {}
    g = torch.Generator().manual_seed(seed + 1)
    io["context.video"] = torch.randn(1, text_len, cfg.caption_channels, generator=g)
    io["context.audio"] = torch.randn(1, text_len, cfg.caption_channels, generator=g)
    mask = torch.ones(1, text_len, dtype=torch.int64)
    mask[0, :1] = 0
    io["context.attention_mask"] = mask
    fv, fa = 4, 26
    io["bidir.video_tokens"] = torch.randn(1, fv * h * w, cfg.in_channels, generator=g)
    io["bidir.audio_tokens"] = torch.randn(1, fa, cfg.audio_in_channels, generator=g)
    io["bidir.video_positions"] = video_positions(0, fv, h, w)
    io["bidir.audio_positions"] = audio_positions(0, fa)
    io["bidir.video_timesteps"] = torch.linspace(1.0, 0.4, fv).repeat_interleave(h * w)[None, :, None]
    io["bidir.audio_timesteps"] = torch.full((1, fa, 1), 0.5)
    nv, na = layout.video_latent_frames, layout.audio_latent_frames
    io["masked.video_in"] = torch.randn(1, nv, cfg.in_channels, h, w, generator=g)
    io["masked.audio_in"] = torch.randn(1, na, cfg.audio_in_channels, generator=g)
    io["masked.video_sigma"] = (layout.video_frame_block_ids() == blocks - 1).float()[None]
    io["masked.audio_sigma"] = (layout.audio_frame_block_ids() == blocks - 1).float()[None]
    for name in ("student", "teacher"):  # placeholders: tell the checker which groups to predict
        io[f"bidir.{name}.video_velocity"] = torch.zeros(1)
    trace = _trace_inputs(model, layout, grid_hw, steps, io, g)
    config = {
        "ltx_core_config": {"transformer": meta_cfg},
        "teacher_overrides": {"rope_type": "split", "frequencies_precision": "float64", "av_ca_timestep_scale_multiplier": 1000},
        "causal_config": causal,
        "derived_dims": {"latent_grid_hw": [h, w], "text_len": text_len},
        "causal_rollout": {"video_latent_frames": nv, "audio_latent_frames": na, "denoising_step_list": steps, "context_noise": 0, "trace": trace},
    }  # fmt: skip
    (root / "config.json").write_text(json.dumps(config, indent=1))
    save_file({k: v.contiguous() for k, v in io.items()}, str(root / "io.safetensors"))
    fx = TransformerFixture.load(root)
    text = fx.text()
    preds = {**_bidir(fx, text), **_masked(fx, text), **streaming_predictions(fx, text)}
    io.update({k: v.contiguous() for k, v in preds.items()})
    save_file({k: v.contiguous() for k, v in io.items()}, str(root / "io.safetensors"))
    return root


def _trace_inputs(model, layout, grid_hw, steps, io, g) -> list[dict]:
    cfg = StreamConfig(latent_grid_hw=grid_hw, layout_kind=layout.kind, denoising_step_list=tuple(steps))
    gen = StreamingGenerator(model, cfg)
    text = model.encode_text(io["context.video"], io["context.audio"], io["context.attention_mask"])
    cache = gen.new_cache(text)
    sigmas = [float(s) for s in student_sigmas(steps) if s > 0]
    trace, n = [], 0
    for k in range(layout.num_blocks):
        spec = layout.block(k)
        xv = torch.randn(1, spec.video_frames, model.config.in_channels, *grid_hw, generator=g)
        xa = torch.randn(1, spec.audio_frames, model.config.audio_in_channels, generator=g)
        for i, s in enumerate([*sigmas, 0.0]):
            kind = "denoise" if i < len(sigmas) else "cache_refresh"
            p = f"trace.{n:02d}."
            io[p + "video_in"], io[p + "audio_in"] = xv, xa
            io[p + "video_sigma"] = torch.full((1, spec.video_frames), s)
            io[p + "audio_sigma"] = torch.full((1, spec.audio_frames), s)
            trace.append({"index": n, "block": k, "step": i, "kind": kind, "video_start_frame": spec.video_start,
                          "audio_start_frame": spec.audio_start, "video_frames": spec.video_frames,
                          "audio_frames": spec.audio_frames, "sigma": s})  # fmt: skip
            vx0, ax0 = gen.run_pass(cache, spec, xv, xa, s, commit=kind == "cache_refresh")
            n += 1
            if kind == "denoise" and i + 1 < len(sigmas):
                xv = renoise(vx0, torch.randn(vx0.shape, generator=g), sigmas[i + 1])
                xa = renoise(ax0, torch.randn(ax0.shape, generator=g), sigmas[i + 1])
            elif kind == "denoise":
                xv, xa = vx0, ax0
    return trace
