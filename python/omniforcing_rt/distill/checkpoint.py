"""Training checkpoints (atomic, resumable) and export of the generator in the release's formats.

Checkpoint file ``OUT/checkpoints/step_<8-digit step>.pt`` (``torch.save``, loadable with ``weights_only``):

=====================  ================================================================
``generator``          ``{"model.X": tensor}``: full generator state (release training layout)
``generator_ema``      same for the EMA shadow (fp32), once the EMA has started
``critic``             same for the critic (DMD stages)
``optimizer``          ``{name: full optimizer state dict keyed by parameter name}``
``step``               completed optimisation steps
``format``             ``omniforcing_rt.distill/1``
``config``             the run's config as JSON
``model_config``       the generator's architecture (``ModelConfig.to_metadata()``) as JSON
``stream``             JSON: latent grid, layout, step list, text tokens (for export)
=====================  ================================================================

The model loader reads it directly (``load_transformer(base, generator=ckpt.pt[, use_ema=True])``).

Atomicity: a checkpoint is written to ``*.tmp``, flushed and fsync'ed, then renamed over its final
name (atomic on POSIX), and only then does the ``latest`` pointer (itself written the same way)
name it. A crash at any point leaves the previous checkpoint and pointer intact; stale ``*.tmp``
files are removed by the next save. Resume takes the newest checkpoint that loads.

Export (:func:`export_generator`) writes a model directory: sharded safetensors
``<name>-0000N-of-0000M.safetensors`` with the transformer under ``model.diffusion_model.`` and the
architecture in each shard's ``config`` metadata, the ``<name>.safetensors.index.json`` weight map (the
release's generator layout, spec E), and ``model.json`` so ``load_model(DIR)``, ``omniforcing-rt
generate --model DIR`` and the streaming pipeline use it as is.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from omniforcing_rt.errors import CheckpointError
from omniforcing_rt.model.weights import LTX_PREFIX

__all__ = [
    "CKPT_FORMAT",
    "export_generator",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

CKPT_FORMAT = "omniforcing_rt.distill/1"
LATEST = "latest"
_NAME = re.compile(r"^step_(\d{8})\.pt$")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def save_checkpoint(ckdir: Path, step: int, obj: dict[str, Any], keep: int) -> Path:
    """Write ``obj`` as step ``step`` atomically, point ``latest`` at it, keep the newest ``keep``."""
    ckdir.mkdir(parents=True, exist_ok=True)
    for stale in ckdir.glob("*.tmp"):
        stale.unlink(missing_ok=True)
    final = ckdir / f"step_{step:08d}.pt"
    tmp = final.with_name(final.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save({**obj, "step": step, "format": CKPT_FORMAT}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    _fsync_dir(ckdir)
    _atomic_write_bytes(ckdir / LATEST, (final.name + "\n").encode())
    for old in list_checkpoints(ckdir)[:-keep]:
        old.unlink(missing_ok=True)
    return final


def list_checkpoints(ckdir: Path) -> list[Path]:
    """Complete checkpoint files, oldest first."""
    if not ckdir.is_dir():
        return []
    return sorted(p for p in ckdir.iterdir() if _NAME.match(p.name))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a training checkpoint on CPU (weights_only); CheckpointError when unreadable or foreign."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated or corrupt files
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
    if not isinstance(obj, dict) or obj.get("format") != CKPT_FORMAT or "generator" not in obj:
        raise CheckpointError(f"{path} is not an {CKPT_FORMAT} training checkpoint")
    return obj


def latest_checkpoint(ckdir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest loadable checkpoint: the ``latest`` pointer first, then older files."""
    candidates = list(reversed(list_checkpoints(ckdir)))
    pointer = ckdir / LATEST
    if pointer.exists():
        named = ckdir / pointer.read_text().strip()
        if named in candidates:
            candidates.remove(named)
            candidates.insert(0, named)
    for path in candidates:
        try:
            return path, load_checkpoint(path)
        except CheckpointError as e:
            log.warning("skipping unreadable checkpoint: %s", e)
    return None


def prefixed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Module state -> the release training layout (``model.X``)."""
    return {"model." + k: v for k, v in state.items()}


def unprefixed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``model.X`` -> module names."""
    return {k[len("model.") :] if k.startswith("model.") else k: v for k, v in state.items()}


def export_generator(
    checkpoint: Path, out_dir: Path, *, use_ema: bool = False, name: str = "omniforcing_student",
    shard_bytes: int = 2 << 30,
) -> Path:  # fmt: skip
    """Export a checkpoint's generator (or its EMA) as a model directory (see module docstring)."""
    obj = load_checkpoint(checkpoint)
    key = "generator_ema" if use_ema else "generator"
    if key not in obj:
        raise CheckpointError(f"{checkpoint} has no '{key}' (the EMA starts at train.ema_start)")
    state = unprefixed(obj[key])
    meta = {"config": json.dumps({"transformer": json.loads(obj["model_config"])})}
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k in sorted(state):
        t = state[k].detach().contiguous()
        if shards[-1] and size + t.nbytes > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][LTX_PREFIX + k] = t
        size += t.nbytes
    out_dir.mkdir(parents=True, exist_ok=True)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        fname = f"{name}-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        tmp = out_dir / (fname + ".tmp")
        save_file(shard, str(tmp), metadata=meta)
        os.replace(tmp, out_dir / fname)
        weight_map.update(dict.fromkeys(shard, fname))
        total += sum(t.nbytes for t in shard.values())
    index = {"metadata": {"total_size": total, "step": obj["step"], "ema": use_ema}, "weight_map": weight_map}
    _atomic_write_bytes(out_dir / f"{name}.safetensors.index.json", (json.dumps(index, indent=1) + "\n").encode())
    stream = json.loads(obj["stream"])
    info = {
        "transformer": f"{name}.safetensors.index.json",
        "name": name,
        "description": f"distilled generator ({'EMA' if use_ema else 'raw'} weights, step {obj['step']})",
        **stream,
        "convention": "student" if stream.get("convention", "student") == "student" else "teacher",
    }
    if stream.get("audio_sink_tokens"):
        info["audio_sink_tokens"] = stream["audio_sink_tokens"]
    _atomic_write_bytes(out_dir / "model.json", (json.dumps(info, indent=1) + "\n").encode())
    return out_dir
