"""Distillation of the LTX-2 teacher into the block-causal OmniForcing student.

Stages (``omniforcing-rt distill STAGE``; spec D):

* ``ode-pairs``: sample the bidirectional teacher with the multimodal guider, store trajectories at the
  student's sigmas (data.py documents the sharded format);
* ``ode``: causal ODE regression (block-causal masked forward, per-block trajectory index);
* ``dmd``: joint Self-Forcing DMD (KV-cached rollout, real score = teacher with CFG, critic);
* ``bidir-dmd``: the paper's Stage-I bidirectional DMD.

Modules: config (dataclasses, defaults, presets), data (prompts, ODE pairs, keyed sampling),
guidance (teacher forwards, perturbations, guider), networks (teacher / generator / critic),
losses, rollout, trainer (updates, EMA, resume), checkpoint (atomic files, export),
distributed (process group, FSDP2), metrics, ode_pairs, ode, dmd, stages (entry point).
"""

from omniforcing_rt.distill.config import PRESETS, STAGES, DistillConfig, build_config, load_config
from omniforcing_rt.distill.stages import StageResult, run_stage

__all__ = ["PRESETS", "STAGES", "DistillConfig", "StageResult", "build_config", "load_config", "run_stage"]
