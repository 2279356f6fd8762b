"""The networks of a stage: the frozen teacher, the generator (student) and the critic.

* teacher: loaded from a model directory (``model.json``) or any LTX-2 checkpoint layout the loader
  reads; frozen, evaluated under the teacher convention (split RoPE, gate timestep 1000 sigma);
* generator: the teacher's weights (or ``student.init``) under the student convention; with
  ``audio_sink_tokens`` > 0 it gains the learnable sinks, initialised N(0, 0.02^2) when the source
  has none (spec B.4);
* critic (fake score): a trainable copy of the teacher (or ``dmd.critic_init``), teacher convention.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import torch

from omniforcing_rt.distill.config import DistillConfig
from omniforcing_rt.errors import CheckpointError
from omniforcing_rt.model.config import Convention, ModelConfig
from omniforcing_rt.model.transformer import AVTransformer
from omniforcing_rt.model.weights import (
    SINK_KEY,
    checkpoint_files,
    iter_tensors,
    load_transformer,
    remap_generator_keys,
)
from omniforcing_rt.models import init_random_weights, write_model_dir

__all__ = ["build_critic", "build_generator", "checkpoint_extras", "convention", "ensure_teacher", "load_teacher"]

log = logging.getLogger(__name__)


def convention(name: str) -> Convention:
    """'teacher' or 'student' -> the runtime convention (float32 angles, as in training code)."""
    return Convention.teacher() if name == "teacher" else Convention.student()


def ensure_teacher(cfg: DistillConfig, out: Path, is_main: bool = True) -> Path:
    """The teacher path; writes the seeded synthetic teacher to OUT/teacher when the config asks for one."""
    if cfg.teacher is not None:
        path = Path(cfg.teacher)
        if not path.exists():
            raise CheckpointError(f"teacher not found: {path} (set 'teacher' to a model directory or LTX-2 checkpoint)")
        return path
    path = out / "teacher"
    if (path / "model.json").exists():
        return path
    if is_main:
        model = AVTransformer(ModelConfig(**(cfg.synthetic_teacher or {})))
        init_random_weights(model, cfg.synthetic_teacher_seed)
        info = {
            "name": "synthetic-teacher", "description": "seeded random teacher (testing only, untrained)",
            "latent_grid_hw": list(cfg.latent_grid_hw), "text_tokens": cfg.text_tokens, "convention": "teacher",
            "seed": cfg.synthetic_teacher_seed,
        }  # fmt: skip
        write_model_dir(path, model, info)
        log.info("wrote a synthetic teacher to %s", path)
    return path


def _weights_path(path: Path) -> tuple[Path, dict | None]:
    manifest = path / "model.json"
    if path.is_dir() and manifest.exists():
        try:
            info = json.loads(manifest.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{manifest} is not valid JSON: {e}") from None
        if "transformer" not in info:
            raise CheckpointError(f"{manifest} lacks 'transformer'")
        return path / info["transformer"], info
    return path, None


def load_teacher(path: Path, device: torch.device) -> AVTransformer:
    """The frozen teacher (eval mode, no grad)."""
    weights, _ = _weights_path(path)
    model, _, report = load_transformer(weights, device=device)
    for note in report.notices:
        log.info(note)
    model.requires_grad_(False)
    return model.eval()


def _read_generator(source: str, use_ema: bool, entry: str = "generator") -> dict[str, torch.Tensor]:
    """Transformer tensors of a checkpoint (``entry`` picks 'critic' from a training .pt)."""
    weights, _ = _weights_path(Path(source))
    files = checkpoint_files(weights)
    if entry != "generator" and files[0].suffix == ".pt":
        obj = torch.load(str(files[0]), map_location="cpu", weights_only=True)
        if not isinstance(obj, dict) or not isinstance(obj.get(entry), dict):
            raise CheckpointError(f"{files[0]} has no '{entry}' entry")
        raw = obj[entry]
    else:
        raw = dict(iter_tensors(files, use_ema=use_ema))
    _, mapping = remap_generator_keys(raw)
    return {mapping[k]: v for k, v in raw.items() if k in mapping}


def _copy_with(
    teacher: AVTransformer, cfg: ModelConfig, source: str | None, use_ema: bool, seed: int, entry: str = "generator"
) -> AVTransformer:
    model = AVTransformer(cfg).to(teacher.patchify_proj.weight.device)
    state = {k: v.detach().clone() for k, v in teacher.state_dict().items()}
    if source is not None:
        extra = _read_generator(source, use_ema, entry)
        unknown = sorted(set(extra) - set(model.state_dict()))
        if unknown:
            raise CheckpointError(f"{source} has tensors the model does not: {unknown[:6]}")
        state.update(extra)
    if cfg.audio_sink_tokens and SINK_KEY not in state:
        gen = torch.Generator().manual_seed(seed)
        state[SINK_KEY] = torch.randn(1, cfg.audio_sink_tokens, cfg.audio_dim, generator=gen) * 0.02
    if not cfg.audio_sink_tokens:
        state.pop(SINK_KEY, None)
    want = model.state_dict()
    wrong = [f"{k}: {tuple(v.shape)} vs {tuple(want[k].shape)}" for k, v in state.items() if v.shape != want[k].shape]
    if wrong:
        raise CheckpointError(f"initial weights do not match the model: {wrong[:6]}")
    model.load_state_dict(state, strict=True)
    return model.train()


def build_generator(cfg: DistillConfig, teacher: AVTransformer) -> AVTransformer:
    """The generator: teacher weights (+ ``student.init``), with sinks when configured."""
    mcfg = teacher.config.with_(audio_sink_tokens=cfg.student.audio_sink_tokens)
    return _copy_with(teacher, mcfg, cfg.student.init, cfg.student.init_use_ema, cfg.train.seed + 1)


def build_critic(cfg: DistillConfig, teacher: AVTransformer) -> AVTransformer:
    """The critic: a trainable copy of the teacher (+ ``dmd.critic_init``)."""
    if cfg.dmd.critic_init is None:
        critic = copy.deepcopy(teacher)
        critic.requires_grad_(True)
        return critic.train()
    return _copy_with(teacher, teacher.config, cfg.dmd.critic_init, False, 0, entry="critic")


def checkpoint_extras(cfg: DistillConfig, generator_config: ModelConfig) -> dict[str, str]:
    """The architecture and stream geometry stored in every checkpoint (what export needs)."""
    stream = {
        "latent_grid_hw": list(cfg.latent_grid_hw),
        "layout": cfg.student.layout,
        "denoising_step_list": list(cfg.student.step_list),
        "text_tokens": cfg.text_tokens,
        "convention": cfg.student.convention,
        "audio_sink_tokens": cfg.student.audio_sink_tokens,
        "stage": cfg.stage,
    }
    return {"model_config": json.dumps(generator_config.to_metadata()), "stream": json.dumps(stream)}
