"""Configuration of the distillation stages: frozen dataclasses, per-stage defaults, the tiny preset.

A config file (JSON or TOML) holds the sections below; every key is optional and falls back to the
stage's defaults, which follow the official configs (spec D.1 / D.2):

* ``ode``: lr 2e-4, AdamW(0.9, 0.999), wd 0, clip 1.0, video/audio x0-MSE weights 1/1;
* ``dmd``: generator and critic lr 2e-5, AdamW(beta1 0, 0.999), wd 0.01, clip 1.0, critic updates every
  step and the generator every 5th, real-score CFG 3 (video) / 5 (audio), EMA 0.99 from step 200;
* ``bidir-dmd`` (paper Stage I): lr 2e-5, AdamW(0.9, 0.999), wd 0.01, clip 3.0, 5 critic updates per
  generator update, step list [1000, 757, 522, 0], generator under the teacher convention;
* ``ode-pairs``: 40-step LTX2Scheduler teacher sampling with the multimodal guider (video CFG 3,
  audio CFG 5, STG 1 on block 29, modality scale 3, rescale 0.7).

Unknown keys, wrong types and invalid values are all collected and raised together as one
:class:`ConfigError`. The ``tiny`` preset overlays a laptop-sized synthetic setup on the stage
defaults (its own seeded random teacher and generated ODE pairs) so the stages run without any file.
"""

from __future__ import annotations

import json
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from omniforcing_rt.errors import ConfigError
from omniforcing_rt.pipeline.schedule import PAPER_STEP_LIST, RELEASE_STEP_LIST

__all__ = [
    "PRESETS",
    "STAGES",
    "DistillConfig",
    "DmdConfig",
    "GuiderConfig",
    "OdeLossConfig",
    "OdePairsConfig",
    "OptimConfig",
    "StudentConfig",
    "TrainConfig",
    "build_config",
    "load_config",
]

STAGES = ("ode-pairs", "ode", "dmd", "bidir-dmd")
AUDIO_SIGMA_MAPPINGS = ("own_block", "release_compat")


def _positive(name: str, value: float, problems: list[str], strict: bool = True) -> None:
    if not (value > 0 if strict else value >= 0):
        problems.append(f"{name} must be {'> 0' if strict else '>= 0'}, got {value}")


@dataclass(frozen=True, kw_only=True)
class GuiderConfig:
    """Multimodal guider of the teacher (spec A.11): per-modality CFG, STG, modality guidance, rescale.

    pred = c + (cfg - 1)(c - u) + stg (c - p) + (modality - 1)(c - m), then
    pred <- pred * (rescale * std(c) / std(pred) + 1 - rescale), per sample and modality.
    """

    video_cfg: float = 3.0
    """Video classifier-free guidance scale (1 = off)."""
    audio_cfg: float = 5.0
    """Audio CFG scale (README command: 5.0; the guider class default is 7.0)."""
    video_stg: float = 1.0
    """Video spatio-temporal guidance scale (0 = off): the pass with self-attention skipped in ``stg_blocks``."""
    audio_stg: float = 1.0
    """Audio STG scale (0 = off)."""
    video_modality: float = 3.0
    """Video modality-guidance scale (1 = off): the pass with both A<->V attentions skipped in every block."""
    audio_modality: float = 3.0
    """Audio modality-guidance scale (1 = off)."""
    video_rescale: float = 0.7
    """Video std rescale factor in [0, 1] (0 = off)."""
    audio_rescale: float = 0.7
    """Audio std rescale factor in [0, 1] (0 = off)."""
    stg_blocks: tuple[int, ...] = (29,)
    """Transformer blocks whose video and audio self-attention the STG pass skips."""

    def __post_init__(self) -> None:
        p: list[str] = []
        for m in ("video", "audio"):
            _positive(f"{m}_cfg", getattr(self, f"{m}_cfg"), p)
            _positive(f"{m}_modality", getattr(self, f"{m}_modality"), p)
            _positive(f"{m}_stg", getattr(self, f"{m}_stg"), p, strict=False)
            if not 0.0 <= getattr(self, f"{m}_rescale") <= 1.0:
                p.append(f"{m}_rescale must be in [0, 1], got {getattr(self, f'{m}_rescale')}")
        if any(b < 0 for b in self.stg_blocks):
            p.append(f"stg_blocks must be non-negative block indices, got {list(self.stg_blocks)}")
        if p:
            raise ConfigError("invalid guider config", p)


@dataclass(frozen=True, kw_only=True)
class OdePairsConfig:
    """Teacher sampling for the ODE pairs (stage ``ode-pairs``, spec D.2 step 0)."""

    num_pairs: int = 1000
    """Number of (prompt, noise) trajectories to sample (the maintainers advise 1k-10k)."""
    shard_size: int = 64
    """Pairs per safetensors shard."""
    batch_size: int = 1
    """Trajectories sampled together (each guided step runs 4 x batch rows)."""
    teacher_steps: int = 40
    """LTX2Scheduler steps of the teacher's Euler sampler."""
    seed: int = 0
    """Seed of the keyed initial noise (pair i uses seed, i)."""
    dtype: str = "float32"
    """Storage dtype of latents and text features ('float32' or 'bfloat16')."""
    guider: GuiderConfig = field(default_factory=GuiderConfig)
    """Teacher guidance."""

    def __post_init__(self) -> None:
        p: list[str] = []
        for name in ("num_pairs", "shard_size", "batch_size", "teacher_steps"):
            _positive(name, getattr(self, name), p)
        if self.dtype not in ("float32", "bfloat16"):
            p.append(f"dtype must be 'float32' or 'bfloat16', got {self.dtype!r}")
        if p:
            raise ConfigError("invalid ode-pairs config", p)


@dataclass(frozen=True, kw_only=True)
class StudentConfig:
    """The generator being trained: layout, sampling, stabilisers and initialisation."""

    layout: str = "release"
    """Block layout: 'release' (4-3-3-3-3) or 'paper' (Global Prefix B0 = 1 video + 1 audio latent)."""
    audio_sink_tokens: int = 0
    """Learnable audio sink tokens with Identity RoPE (paper: 16; release: 0). New sinks start N(0, 0.02^2)."""
    step_list: tuple[int, ...] = RELEASE_STEP_LIST
    """Denoising step list on the 0..1000 scale (nearest 40-step LTX2 grid point; trailing 0 = clean)."""
    context_noise: int = 0
    """Noise level of the rollout's context-refresh pass on the 0..1000 scale (0 as shipped)."""
    convention: str = "student"
    """Runtime convention of the generator: 'student' (interleaved RoPE, gate sigma) or 'teacher'."""
    audio_sigma_mapping: str = "own_block"
    """ODE stage: 'own_block' gives each audio latent the noise level of its own block; 'release_compat'
    reproduces the release code, which gives 14 audio latents the previous block's level (spec D.2)."""
    init: str | None = None
    """Generator weights to start from (training .pt, generator safetensors or model dir); default: the teacher."""
    init_use_ema: bool = False
    """Take ``generator_ema`` from a training .pt given as ``init``."""

    def __post_init__(self) -> None:
        p: list[str] = []
        if self.layout not in ("release", "paper"):
            p.append(f"layout must be 'release' or 'paper', got {self.layout!r}")
        if self.audio_sink_tokens < 0:
            p.append(f"audio_sink_tokens must be >= 0, got {self.audio_sink_tokens}")
        if not 0 <= self.context_noise < 1000:
            p.append(f"context_noise must be in [0, 1000), got {self.context_noise}")
        if self.convention not in ("student", "teacher"):
            p.append(f"convention must be 'student' or 'teacher', got {self.convention!r}")
        if self.audio_sigma_mapping not in AUDIO_SIGMA_MAPPINGS:
            p.append(f"audio_sigma_mapping must be one of {AUDIO_SIGMA_MAPPINGS}, got {self.audio_sigma_mapping!r}")
        steps = list(self.step_list)
        if not steps or steps[-1] != 0 or any(a <= b for a, b in zip(steps, steps[1:])) or steps[0] > 1000:
            p.append(f"step_list must decrease strictly from <= 1000 to a trailing 0, got {steps}")
        if p:
            raise ConfigError("invalid student config", p)


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    """AdamW settings of one trained network."""

    lr: float = 2e-4
    """Peak learning rate."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW (beta1, beta2); the DMD stage uses beta1 = 0."""
    weight_decay: float = 0.0
    """Decoupled weight decay."""
    grad_clip: float = 1.0
    """Max global gradient norm (0 = no clipping)."""
    warmup_steps: int = 0
    """Linear warmup from 0 over this many updates."""
    schedule: str = "constant"
    """After warmup: 'constant' or 'cosine' (to 0 at the last step)."""

    def __post_init__(self) -> None:
        p: list[str] = []
        _positive("lr", self.lr, p)
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            p.append(f"betas must be two numbers in [0, 1), got {list(self.betas)}")
        _positive("weight_decay", self.weight_decay, p, strict=False)
        _positive("grad_clip", self.grad_clip, p, strict=False)
        _positive("warmup_steps", self.warmup_steps, p, strict=False)
        if self.schedule not in ("constant", "cosine"):
            p.append(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        if p:
            raise ConfigError("invalid optimizer config", p)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """The training loop: length, batching, parallelism, checkpoints, EMA."""

    steps: int = 1000
    """Optimisation steps (one step = one critic update, plus a generator update when due)."""
    batch_size: int = 1
    """Samples per process per micro-step."""
    grad_accum: int = 1
    """Micro-steps accumulated into each update (global batch = batch_size x processes x grad_accum)."""
    seed: int = 0
    """Seed of every random draw; draws are keyed by (seed, step, sample slot), so resumes are exact."""
    checkpoint_every: int = 500
    """Steps between checkpoints (the last step always writes one)."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk (older ones are deleted after a successful save)."""
    ema_decay: float | None = None
    """Generator EMA decay (None = no EMA)."""
    ema_start: int = 200
    """Step at which the EMA shadow is initialised from the generator."""
    dtype: str = "float32"
    """Compute dtype: 'float32', or 'bfloat16' (FSDP mixed precision, fp32 master weights and reduction)."""
    parallel: str = "auto"
    """'auto' (FSDP2 when more than one process), 'fsdp' or 'none' (single process only)."""
    activation_checkpointing: bool = True
    """Recompute each transformer block in backward (trained networks)."""
    rollout_checkpointing: bool = True
    """Self-Forcing: checkpoint the gradient-carrying exit pass of every block."""
    num_threads: int | None = None
    """torch intra-op threads on CPU (None = torch default)."""

    def __post_init__(self) -> None:
        p: list[str] = []
        for name in ("steps", "batch_size", "grad_accum", "checkpoint_every", "keep_checkpoints"):
            _positive(name, getattr(self, name), p)
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            p.append(f"ema_decay must be in (0, 1) or null, got {self.ema_decay}")
        _positive("ema_start", self.ema_start, p, strict=False)
        if self.dtype not in ("float32", "bfloat16"):
            p.append(f"dtype must be 'float32' or 'bfloat16', got {self.dtype!r}")
        if self.parallel not in ("auto", "fsdp", "none"):
            p.append(f"parallel must be 'auto', 'fsdp' or 'none', got {self.parallel!r}")
        if self.num_threads is not None:
            _positive("num_threads", self.num_threads, p)
        if p:
            raise ConfigError("invalid train config", p)


@dataclass(frozen=True, kw_only=True)
class OdeLossConfig:
    """Causal ODE regression loss (x0 MSE per modality)."""

    video_weight: float = 1.0
    """Weight of the video x0 MSE."""
    audio_weight: float = 1.0
    """Weight of the audio x0 MSE (the paper-era config used 0.16)."""

    def __post_init__(self) -> None:
        p: list[str] = []
        _positive("video_weight", self.video_weight, p, strict=False)
        _positive("audio_weight", self.audio_weight, p, strict=False)
        if p:
            raise ConfigError("invalid ode loss config", p)


@dataclass(frozen=True, kw_only=True)
class DmdConfig:
    """Distribution matching distillation (Self-Forcing causal DMD and the paper's bidirectional Stage I)."""

    real_cfg_video: float = 3.0
    """CFG scale of the frozen teacher's real score, video."""
    real_cfg_audio: float = 5.0
    """CFG scale of the real score, audio."""
    min_t: int = 20
    """DMD timesteps t ~ U{0..999} are clamped to [min_t, max_t], then looked up on the 1000-step LTX2 grid (sigma 0.217)."""
    max_t: int = 980
    """Upper clamp of the DMD timestep (sigma 0.998)."""
    video_weight: float = 1.0
    """Weight of the video DMD loss."""
    audio_weight: float = 1.0
    """Weight of the audio DMD loss."""
    gen_update_ratio: int = 5
    """The generator updates on every n-th step; the critic on every step."""
    loss_blocks: str = "all"
    """'all' (release: DMD over every rolled-out block) or 'last' (paper v1 Stage III: only the last block
    carries gradient and loss; earlier blocks are rolled out without grad and act as clean history)."""
    critic_init: str | None = None
    """Critic weights to start from (default: the teacher)."""
    critic_optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=2e-5, betas=(0.0, 0.999), weight_decay=0.01)
    )
    """Optimiser of the critic (fake score)."""

    def __post_init__(self) -> None:
        p: list[str] = []
        _positive("real_cfg_video", self.real_cfg_video, p)
        _positive("real_cfg_audio", self.real_cfg_audio, p)
        if not 0 <= self.min_t <= self.max_t < 1000:
            p.append(f"need 0 <= min_t <= max_t < 1000, got {self.min_t}, {self.max_t}")
        _positive("video_weight", self.video_weight, p, strict=False)
        _positive("audio_weight", self.audio_weight, p, strict=False)
        _positive("gen_update_ratio", self.gen_update_ratio, p)
        if self.loss_blocks not in ("all", "last"):
            p.append(f"loss_blocks must be 'all' or 'last', got {self.loss_blocks!r}")
        if p:
            raise ConfigError("invalid dmd config", p)


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """Everything one distillation stage needs."""

    stage: str
    """One of 'ode-pairs', 'ode', 'dmd', 'bidir-dmd'."""
    teacher: str | None = None
    """Teacher checkpoint: a model directory (model.json), an LTX-2 safetensors file, shard dir or index."""
    teacher_convention: str = "teacher"
    """Convention the teacher and critic run under: 'teacher' (LTX-2 header) or 'student'."""
    synthetic_teacher: dict[str, Any] | None = None
    """Testing only: ModelConfig fields of a seeded random teacher written to OUT/teacher when ``teacher`` is unset."""
    synthetic_teacher_seed: int = 0
    """Seed of the synthetic teacher's weights."""
    ode_pairs: str | None = None
    """ODE pairs directory (read by 'ode'; 'ode-pairs' writes here, default OUT/ode_pairs)."""
    generate_pairs: bool = False
    """'ode': sample the pairs into OUT/ode_pairs when ``ode_pairs`` is unset (the tiny preset does)."""
    prompts: tuple[str, ...] = ("a red ball bounces on a wooden floor while it squeaks",)
    """Training prompts (pair i and DMD sample i use prompt i mod len)."""
    negative_prompt: str = ""
    """Unconditional prompt of CFG."""
    prompt_features: str | None = None
    """Safetensors with precomputed text-encoder features 'video', 'audio' [N, L, C] (+ 'mask' [N, L]) for
    ``prompts`` plus the negative prompt as row N; unset = hashed stand-in features (no language understanding)."""
    text_tokens: int = 1024
    """Text context length L (hashed features only)."""
    latent_grid_hw: tuple[int, int] = (16, 24)
    """Video latent rows x columns (512x768 pixels -> 16 x 24)."""
    video_latents: int = 16
    """Video latent frames per clip (the audio count follows: 16 -> 126)."""
    student: StudentConfig = field(default_factory=StudentConfig)
    """The generator."""
    pairs: OdePairsConfig = field(default_factory=OdePairsConfig)
    """ODE pair sampling."""
    ode: OdeLossConfig = field(default_factory=OdeLossConfig)
    """ODE regression loss."""
    dmd: DmdConfig = field(default_factory=DmdConfig)
    """DMD settings (dmd, bidir-dmd)."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Generator optimiser."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Training loop."""

    def __post_init__(self) -> None:
        p: list[str] = []
        if self.stage not in STAGES:
            p.append(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.teacher_convention not in ("teacher", "student"):
            p.append(f"teacher_convention must be 'teacher' or 'student', got {self.teacher_convention!r}")
        if not self.prompts:
            p.append("prompts must not be empty")
        _positive("text_tokens", self.text_tokens, p)
        if len(self.latent_grid_hw) != 2 or any(x < 1 for x in self.latent_grid_hw):
            p.append(f"latent_grid_hw must be two positive ints, got {list(self.latent_grid_hw)}")
        _positive("video_latents", self.video_latents, p)
        if self.teacher is None and self.synthetic_teacher is None:
            p.append("teacher is required (a model directory or LTX-2 checkpoint), or use --preset tiny")
        if self.stage == "ode" and self.ode_pairs is None and not self.generate_pairs:
            p.append("ode needs 'ode_pairs' (run 'distill ode-pairs' first) or generate_pairs = true")
        if p:
            raise ConfigError("invalid distill config", p)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict that :func:`build_config` reads back to an equal config."""
        return _to_plain(self)


# ------------------------------------------------------------------------------- defaults
_STAGE_DEFAULTS: dict[str, dict[str, Any]] = {
    "ode-pairs": {},
    "ode": {"optim": {"lr": 2e-4, "betas": [0.9, 0.999], "weight_decay": 0.0, "grad_clip": 1.0}},
    "dmd": {
        "optim": {"lr": 2e-5, "betas": [0.0, 0.999], "weight_decay": 0.01, "grad_clip": 1.0},
        "dmd": {"critic_optim": {"lr": 2e-5, "betas": [0.0, 0.999], "weight_decay": 0.01, "grad_clip": 1.0}},
        "train": {"ema_decay": 0.99, "ema_start": 200},
    },
    "bidir-dmd": {
        "optim": {"lr": 2e-5, "betas": [0.9, 0.999], "weight_decay": 0.01, "grad_clip": 3.0},
        "dmd": {"critic_optim": {"lr": 2e-5, "betas": [0.9, 0.999], "weight_decay": 0.01, "grad_clip": 3.0}},
        "student": {"step_list": list(PAPER_STEP_LIST), "convention": "teacher"},
    },
}

TINY_MODEL: dict[str, Any] = {
    "num_layers": 2, "num_attention_heads": 2, "attention_head_dim": 16, "in_channels": 8, "out_channels": 8,
    "cross_attention_dim": 32, "caption_channels": 16, "audio_num_attention_heads": 2,
    "audio_attention_head_dim": 8, "audio_in_channels": 8, "audio_out_channels": 8, "audio_cross_attention_dim": 16,
}  # fmt: skip
"""Architecture of the tiny preset's synthetic teacher (the full LTX-2 block structure at toy width)."""

_TINY_PROMPTS = [
    "a red ball bounces on a wooden floor", "waves crash on a rocky beach", "a dog barks at a passing car",
    "rain falls on a tin roof at night", "a violinist plays a slow melody", "children laugh in a playground",
    "a train rushes through a tunnel", "a campfire crackles under the stars",
]  # fmt: skip

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "synthetic_teacher": TINY_MODEL,
        "generate_pairs": True,
        "prompts": _TINY_PROMPTS,
        "text_tokens": 8,
        "latent_grid_hw": [2, 3],
        "video_latents": 10,
        "pairs": {"num_pairs": 64, "shard_size": 16, "batch_size": 8, "guider": {"stg_blocks": [1]}},
        "train": {"steps": 200, "batch_size": 4, "checkpoint_every": 100, "ema_start": 20, "num_threads": 1},
    },
}
"""Named overlays applied on top of the stage defaults (a config file and CLI flags override them)."""

_TINY_STAGE: dict[str, dict[str, Any]] = {
    "ode": {"optim": {"lr": 3e-3}},
    "dmd": {"optim": {"lr": 3e-4}, "dmd": {"critic_optim": {"lr": 3e-4}, "gen_update_ratio": 2}},
    "bidir-dmd": {"optim": {"lr": 3e-4}, "dmd": {"critic_optim": {"lr": 3e-4}, "gen_update_ratio": 2}},
}


# -------------------------------------------------------------------------------- building
def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def build_config(
    stage: str, data: Mapping[str, Any] | None = None, preset: str | None = None, **top: Any
) -> DistillConfig:
    """A validated config: stage defaults, then the preset, then ``data`` (a parsed file), then ``top``.

    Raises:
        ConfigError: every problem of every section at once.
    """
    if stage not in STAGES:
        raise ConfigError(problems=[f"stage must be one of {STAGES}, got {stage!r}"])
    merged: dict[str, Any] = _merge({}, _STAGE_DEFAULTS[stage])
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(problems=[f"unknown preset {preset!r}; known: {sorted(PRESETS)}"])
        merged = _merge(_merge(merged, PRESETS[preset]), _TINY_STAGE.get(stage, {}))
    data = dict(data or {})
    if "stage" in data and data.pop("stage") != stage:
        raise ConfigError(problems=[f"the config file is for another stage than {stage!r}"])
    merged = _merge(merged, data)
    merged = _merge(merged, {k: v for k, v in top.items() if v is not None})
    merged["stage"] = stage
    problems: list[str] = []
    cfg = _build(DistillConfig, merged, "", problems)
    if problems or cfg is None:
        raise ConfigError("invalid distill config", problems)
    return cfg


def load_config(path: str | Path, stage: str, preset: str | None = None, **top: Any) -> DistillConfig:
    """Read a JSON (``.json``) or TOML (``.toml``) config file and build the stage's config."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(problems=[f"config file not found: {p}"])
    try:
        text = p.read_text()
        data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as e:
        raise ConfigError(problems=[f"cannot parse {p}: {e}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(problems=[f"{p} must hold a JSON/TOML object at the top level"])
    return build_config(stage, data, preset, **top)


def _build(cls: type, data: Any, where: str, problems: list[str]) -> Any:
    if not isinstance(data, Mapping):
        problems.append(f"{where or 'config'} must be an object, got {type(data).__name__}")
        return None
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    for key in data:
        if key not in names:
            problems.append(f"unknown key {where}{key!r}")
    kw: dict[str, Any] = {}
    ok = True
    for f in fields(cls):
        if f.name not in data:
            continue
        n = len(problems)
        value = _convert(hints[f.name], data[f.name], f"{where}{f.name}", problems)
        if len(problems) == n:
            kw[f.name] = value
        ok &= len(problems) == n
    try:  # validate the fields that converted, even when others did not: report everything at once
        obj = cls(**kw)
    except ConfigError as e:
        problems.extend(f"{where}{q}" for q in e.problems)
        return None
    except TypeError as e:  # a required field is missing
        problems.append(f"{where or 'config'}: {e}")
        return None
    return obj if ok else None


def _convert(tp: Any, value: Any, where: str, problems: list[str]) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _convert(args[0], value, where, problems)
    if is_dataclass(tp):
        return _build(tp, value, where + ".", problems)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            problems.append(f"{where} must be a list, got {value!r}")
            return None
        args = typing.get_args(tp)
        item_types = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(item_types) != len(value):
            problems.append(f"{where} must have {len(item_types)} entries, got {list(value)}")
            return None
        return tuple(_convert(t, v, f"{where}[{i}]", problems) for i, (t, v) in enumerate(zip(item_types, value)))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            problems.append(f"{where} must be an object, got {value!r}")
        return dict(value) if isinstance(value, Mapping) else None
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and type(value) is tp:
        return value
    if tp is Any:
        return value
    problems.append(f"{where} must be {getattr(tp, '__name__', tp)}, got {value!r}")
    return None


def _to_plain(obj: Any) -> Any:
    if is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple | list):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj
