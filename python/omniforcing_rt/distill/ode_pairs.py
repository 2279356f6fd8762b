"""Stage ``ode-pairs``: sample the bidirectional teacher and store trajectories at the student's sigmas.

Per pair i: prompt i mod P, initial noise from a generator keyed by (seed, i), then the teacher's
Euler sampler on the ``teacher_steps``-step LTX2Scheduler grid under the teacher convention, each step
with the multimodal guider (:func:`guided_x0`): v = (x - x0_hat) / sigma, x <- x + v (sigma' - sigma), the
last step landing on x0_hat. The state is recorded at the grid points of the student's step list
(sigma 1 = the initial noise, ..., the final clean sample at sigma 0), which must lie on the
grid (the student snaps its step list to the 40-step grid, so the default grids agree exactly).

Processes split the shards (shard s goes to process s mod world); a shard that already exists is
kept, so an interrupted run resumes where it stopped. The index is written last (data.py).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from tqdm import tqdm

from omniforcing_rt.distill.config import DistillConfig, GuiderConfig
from omniforcing_rt.distill.data import (
    INDEX_NAME,
    PromptBank,
    file_sha256,
    keyed_generator,
    shard_name,
    write_index,
    write_shard,
)
from omniforcing_rt.distill.distributed import DistContext
from omniforcing_rt.distill.guidance import guided_x0
from omniforcing_rt.distill.networks import convention, load_teacher
from omniforcing_rt.errors import ConfigError
from omniforcing_rt.model.config import Convention
from omniforcing_rt.model.transformer import AVTransformer, TextContext
from omniforcing_rt.pipeline.layout import audio_latents_for_video
from omniforcing_rt.pipeline.schedule import ltx2_sigmas, student_sigmas

__all__ = ["generate_ode_pairs", "sample_trajectory", "trajectory_grid_indices"]

log = logging.getLogger(__name__)


def trajectory_grid_indices(step_list: tuple[int, ...], teacher_steps: int) -> tuple[list[int], list[float]]:
    """Grid indices (into the teacher's sigma grid) and sigmas of the stored trajectory points."""
    grid = ltx2_sigmas(teacher_steps)
    want = student_sigmas(step_list)
    idx = [int(torch.argmin((grid - s).abs())) for s in want]
    off = [float(abs(grid[i] - s)) for i, s in zip(idx, want)]
    if max(off) > 1e-6:
        raise ConfigError(
            problems=[f"student sigmas {want.tolist()} are not on the {teacher_steps}-step teacher grid "
                      f"(use pairs.teacher_steps = 40)"]
        )  # fmt: skip
    return idx, [float(grid[i]) for i in idx]


@torch.no_grad()
def sample_trajectory(
    teacher: AVTransformer,
    conv: Convention,
    text_cond: TextContext,
    text_uncond: TextContext,
    noise: tuple[torch.Tensor, torch.Tensor],
    guider: GuiderConfig,
    teacher_steps: int,
    keep: list[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Guided Euler sampling from ``noise``; returns the states at grid indices ``keep``.

    Args:
        noise: (video [B, F, C, H, W], audio [B, N, C]) at sigma 1.

    Returns:
        (video [B, T, F, C, H, W], audio [B, T, N, C]) with T = len(keep).
    """
    grid = ltx2_sigmas(teacher_steps)
    xv, xa = noise
    b, f = xv.shape[:2]
    stored: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for i in range(teacher_steps):
        if i in keep:
            stored[i] = (xv, xa)
        s, s_next = float(grid[i]), float(grid[i + 1])
        vs = torch.full((b, f), s, device=xv.device)
        as_ = torch.full(xa.shape[:2], s, device=xa.device)
        vx0, ax0 = guided_x0(teacher, conv, text_cond, text_uncond, xv, xa, vs, as_, guider)
        if s_next == 0.0:
            xv, xa = vx0, ax0
        else:
            xv = xv + (xv - vx0) / s * (s_next - s)
            xa = xa + (xa - ax0) / s * (s_next - s)
    stored[teacher_steps] = (xv, xa)
    missing = [k for k in keep if k not in stored]
    if missing:
        raise ConfigError(problems=[f"trajectory indices {missing} are beyond the {teacher_steps}-step grid"])
    return torch.stack([stored[k][0] for k in keep], 1), torch.stack([stored[k][1] for k in keep], 1)


def _pair_noise(
    seed: int, i: int, shapes: tuple[tuple[int, ...], tuple[int, ...]]
) -> tuple[torch.Tensor, torch.Tensor]:
    g = keyed_generator(seed, i, 0x0DE)
    return torch.randn(shapes[0], generator=g), torch.randn(shapes[1], generator=g)


def _shard_tensors(
    teacher: AVTransformer, cfg: DistillConfig, bank: PromptBank, pairs: range, keep: list[int], bar: tqdm
) -> dict[str, torch.Tensor]:
    mcfg, pc = teacher.config, cfg.pairs
    h, w = cfg.latent_grid_hw
    n_audio = audio_latents_for_video(cfg.video_latents)
    shapes = ((cfg.video_latents, mcfg.in_channels, h, w), (n_audio, mcfg.audio_in_channels))
    conv = convention(cfg.teacher_convention)
    dev = teacher.patchify_proj.weight.device
    dtype = torch.bfloat16 if pc.dtype == "bfloat16" else torch.float32
    out: dict[str, list[torch.Tensor]] = {k: [] for k in ("video", "audio", "video_context", "audio_context",
                                                          "text_mask", "prompt_index")}  # fmt: skip
    ids = list(pairs)
    for start in range(0, len(ids), pc.batch_size):
        chunk = ids[start : start + pc.batch_size]
        prompts = [i % len(bank) for i in chunk]
        fv, fa, fm = bank.batch(prompts)
        nv, na, nm = bank.negative(len(chunk))
        text_c = teacher.encode_text(fv.to(dev), fa.to(dev), fm.to(dev))
        text_u = teacher.encode_text(nv.to(dev), na.to(dev), nm.to(dev))
        noise = [_pair_noise(pc.seed, i, shapes) for i in chunk]
        nz = (torch.stack([n[0] for n in noise]).to(dev), torch.stack([n[1] for n in noise]).to(dev))
        tv, ta = sample_trajectory(teacher, conv, text_c, text_u, nz, pc.guider, pc.teacher_steps, keep)
        out["video"].append(tv.cpu().to(dtype))
        out["audio"].append(ta.cpu().to(dtype))
        out["video_context"].append(fv.to(dtype))
        out["audio_context"].append(fa.to(dtype))
        out["text_mask"].append(fm.to(torch.int64))
        out["prompt_index"].append(torch.tensor(prompts, dtype=torch.int64))
        bar.update(len(chunk))
    return {k: torch.cat(v) for k, v in out.items()}


def generate_ode_pairs(
    cfg: DistillConfig, out_dir: Path, teacher_path: Path, ctx: DistContext, progress: bool = True
) -> Path:
    """Sample ``pairs.num_pairs`` trajectories into ``out_dir`` (see module docstring); returns it."""
    pc = cfg.pairs
    if (out_dir / INDEX_NAME).exists():
        log.info("ODE pairs already complete at %s", out_dir)
        return out_dir
    teacher = load_teacher(teacher_path, ctx.device)
    bad = [b for b in pc.guider.stg_blocks if b >= teacher.config.num_layers]
    if bad:
        raise ConfigError(
            problems=[f"pairs.guider.stg_blocks {bad} out of range for a {teacher.config.num_layers}-block teacher"]
        )
    keep, sigmas = trajectory_grid_indices(cfg.student.step_list, pc.teacher_steps)
    bank = PromptBank(cfg.prompts, cfg.negative_prompt, cfg.text_tokens, teacher.config.caption_channels,
                      cfg.prompt_features)  # fmt: skip
    n_shards = math.ceil(pc.num_pairs / pc.shard_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    mine = [s for s in range(n_shards) if s % ctx.world == ctx.rank]
    todo = [s for s in mine if not (out_dir / shard_name(s, n_shards)).exists()]
    total = sum(min(pc.shard_size, pc.num_pairs - s * pc.shard_size) for s in todo)
    bar = tqdm(total=total, desc="ode-pairs", unit="pair", disable=not (progress and ctx.is_main))
    for s in todo:
        first = s * pc.shard_size
        pairs = range(first, min(pc.num_pairs, first + pc.shard_size))
        write_shard(out_dir, shard_name(s, n_shards), _shard_tensors(teacher, cfg, bank, pairs, keep, bar))
    bar.close()
    ctx.barrier()
    if ctx.is_main:
        mcfg = teacher.config
        h, w = cfg.latent_grid_hw
        shards = []
        for s in range(n_shards):
            first = s * pc.shard_size
            name = shard_name(s, n_shards)
            count = min(pc.shard_size, pc.num_pairs - first)
            shards.append({"file": name, "first": first, "count": count, "sha256": file_sha256(out_dir / name)})
        write_index(out_dir, {
            "num_pairs": pc.num_pairs, "sigmas": sigmas, "step_list": list(cfg.student.step_list),
            "teacher_steps": pc.teacher_steps, "grid_indices": keep,
            "video_shape": [len(keep), cfg.video_latents, mcfg.in_channels, h, w],
            "audio_shape": [len(keep), audio_latents_for_video(cfg.video_latents), mcfg.audio_in_channels],
            "text_shape": [int(bank.video.shape[1]), mcfg.caption_channels], "dtype": pc.dtype,
            "teacher": str(teacher_path), "teacher_convention": cfg.teacher_convention,
            "guider": cfg.to_dict()["pairs"]["guider"], "seed": pc.seed, "prompts": list(cfg.prompts),
            "negative_prompt": cfg.negative_prompt, "shards": shards,
        })  # fmt: skip
    ctx.barrier()
    return out_dir
