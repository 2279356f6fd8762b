"""Training data: prompt features, the sharded ODE-pair format, and keyed sample selection.

ODE-pair directory (format ``omniforcing_rt.ode_pairs``, version 1)::

    index.json                      the only entry point: metadata + the shard list
    pairs-00000-of-00004.safetensors
    ...

Each shard holds ``count`` consecutive pairs as tensors (dtype from the index, text mask int64):

=================  ============================  ==========================================
``video``          [n, T, F, C, H, W]            trajectory at the T stored sigmas (last = clean)
``audio``          [n, T, N, C]                  same for the audio latents
``video_context``  [n, L, caption_channels]      text-encoder features of the pair's prompt (video)
``audio_context``  [n, L, caption_channels]      same (audio)
``text_mask``      [n, L]                        1 = valid text token, 0 = padding
``prompt_index``   [n]                           index into ``index.json['prompts']``
=================  ============================  ==========================================

``index.json`` records: ``format``, ``version``, ``num_pairs``, ``sigmas`` (the T stored noise levels,
decreasing to 0), ``step_list`` and ``teacher_steps`` (how they were chosen), ``video_shape``
[T, F, C, H, W], ``audio_shape`` [T, N, C], ``text_shape`` [L, C], ``dtype``, ``teacher``,
``teacher_convention``, ``guider``, ``seed``, ``prompts``, ``negative_prompt`` and ``shards`` (each
``{"file", "first", "count", "sha256"}``). Shards and the index are written atomically (temporary
file + rename), the index last, so a directory with an index is always complete.

Randomness: a draw for global step s and sample slot j (0 <= j < global batch) uses a generator
seeded from (seed, s, j, purpose), so it does not depend on the number of processes, on gradient
accumulation or on where a run was resumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from omniforcing_rt.errors import CheckpointError, ConfigError
from omniforcing_rt.pipeline.prompt import hashed_prompt_features

__all__ = [
    "OdePairs",
    "PromptBank",
    "file_sha256",
    "keyed_generator",
    "keyed_seed",
    "micro_slots",
    "sample_indices",
    "write_index",
    "write_shard",
]

log = logging.getLogger(__name__)

PAIRS_FORMAT = "omniforcing_rt.ode_pairs"
PAIRS_VERSION = 1
INDEX_NAME = "index.json"
SHARD_KEYS = ("video", "audio", "video_context", "audio_context", "text_mask", "prompt_index")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def keyed_seed(seed: int, *key: int) -> int:
    """A 63-bit integer hashed from (seed, *key): independent streams per key."""
    h = hashlib.blake2b(repr((int(seed), *map(int, key))).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def keyed_generator(seed: int, *key: int) -> torch.Generator:
    """A CPU generator seeded from :func:`keyed_seed`."""
    return torch.Generator().manual_seed(keyed_seed(seed, *key))


def micro_slots(rank: int, world: int, batch: int, micro: int) -> list[int]:
    """Global sample slots of one process's micro-batch: slot = (micro * world + rank) * batch + b."""
    return [(micro * world + rank) * batch + b for b in range(batch)]


def sample_indices(seed: int, step: int, slots: Sequence[int], global_batch: int, size: int) -> list[int]:
    """Dataset indices of the given slots of step ``step``: epoch-wise seeded permutations."""
    out = []
    for j in slots:
        pos = step * global_batch + j
        epoch, off = divmod(pos, size)
        perm = torch.randperm(size, generator=keyed_generator(seed, epoch, 0x5EED))
        out.append(int(perm[off]))
    return out


class PromptBank:
    """Caption features for the training prompts and the negative prompt.

    Either read from a safetensors file (``video`` / ``audio`` [N+1, L, C], optional ``mask`` [N+1, L];
    row N is the negative prompt) or hashed stand-ins (:func:`hashed_prompt_features`).
    """

    def __init__(
        self, prompts: Sequence[str], negative: str, tokens: int, channels: int, features: str | None = None
    ) -> None:
        self.prompts = list(prompts)
        self.negative_prompt = negative
        if features is None:
            feats = [hashed_prompt_features(p, tokens, channels) for p in [*self.prompts, negative]]
            self.video = torch.cat([f.video for f in feats])
            self.audio = torch.cat([f.audio for f in feats])
            self.mask = torch.cat([f.mask for f in feats])
        else:
            self.video, self.audio, self.mask = _read_features(Path(features), len(self.prompts) + 1, channels)

    def __len__(self) -> int:
        return len(self.prompts)

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(video [B, L, C], audio [B, L, C], mask [B, L]) for prompt indices."""
        idx = torch.tensor(list(indices), dtype=torch.int64)
        return self.video[idx], self.audio[idx], self.mask[idx]

    def negative(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The negative prompt's features repeated ``batch`` times."""
        return self.batch([len(self.prompts)] * batch)


def _read_features(path: Path, rows: int, channels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"prompt_features file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            t = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from None
    problems = [f"{path} lacks '{k}'" for k in ("video", "audio") if k not in t]
    if not problems:
        for k in ("video", "audio"):
            if t[k].ndim != 3 or t[k].shape[0] != rows or t[k].shape[2] != channels:
                problems.append(
                    f"{path}: '{k}' must be [{rows} (prompts + negative), L, {channels}], got {tuple(t[k].shape)}"
                )
    if problems:
        raise ConfigError("invalid prompt features", problems)
    mask = t.get("mask", torch.ones(t["video"].shape[:2], dtype=torch.int64)).to(torch.int64)
    return t["video"].float(), t["audio"].float(), mask


# ------------------------------------------------------------------------------ ODE pairs
def shard_name(i: int, n: int) -> str:
    """File name of shard ``i`` of ``n``."""
    return f"pairs-{i:05d}-of-{n:05d}.safetensors"


def _fsync_replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


def write_shard(root: Path, name: str, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Write one shard atomically; returns its index entry (without ``first``/``count``)."""
    missing = [k for k in SHARD_KEYS if k not in tensors]
    if missing:
        raise ConfigError(problems=[f"shard lacks {missing}"])
    tmp = root / (name + ".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"format": PAIRS_FORMAT})
    _fsync_replace(tmp, root / name)
    return {"file": name, "sha256": file_sha256(root / name)}


def write_index(root: Path, meta: dict[str, Any]) -> None:
    """Write ``index.json`` atomically (call after every shard exists)."""
    tmp = root / (INDEX_NAME + ".tmp")
    tmp.write_text(json.dumps({"format": PAIRS_FORMAT, "version": PAIRS_VERSION, **meta}, indent=1) + "\n")
    _fsync_replace(tmp, root / INDEX_NAME)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class OdePairs:
    """Reader of an ODE-pair directory (see module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        index = self.root / INDEX_NAME
        if not index.is_file():
            raise CheckpointError(f"no ODE pairs at {self.root}: {INDEX_NAME} not found (run 'distill ode-pairs')")
        try:
            self.index: dict[str, Any] = json.loads(index.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{index} is not valid JSON: {e}") from None
        if self.index.get("format") != PAIRS_FORMAT or self.index.get("version") != PAIRS_VERSION:
            raise CheckpointError(f"{index}: not an {PAIRS_FORMAT} v{PAIRS_VERSION} index")
        missing = [s["file"] for s in self.index["shards"] if not (self.root / s["file"]).is_file()]
        if missing:
            raise CheckpointError(f"{index} names missing shards: {missing[:4]}")
        self._starts = [int(s["first"]) for s in self.index["shards"]]

    def __len__(self) -> int:
        return int(self.index["num_pairs"])

    @property
    def sigmas(self) -> list[float]:
        return [float(s) for s in self.index["sigmas"]]

    def load(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Stack the pairs ``indices``: every shard key with a leading batch dim (latents as float32)."""
        rows: list[dict[str, torch.Tensor]] = []
        for i in indices:
            if not 0 <= i < len(self):
                raise IndexError(f"pair {i} out of range [0, {len(self)})")
            s = max(k for k, start in enumerate(self._starts) if start <= i)
            shard = self.index["shards"][s]
            off = i - int(shard["first"])
            try:
                with safe_open(str(self.root / shard["file"]), framework="pt") as f:
                    rows.append({k: f.get_slice(k)[off : off + 1] for k in SHARD_KEYS})
            except (SafetensorError, OSError) as e:
                raise CheckpointError(f"cannot read {shard['file']}: {e}") from None
        out = {k: torch.cat([r[k] for r in rows]) for k in SHARD_KEYS}
        for k in ("video", "audio", "video_context", "audio_context"):
            out[k] = out[k].float()
        return out

    def verify(self) -> list[str]:
        """Shards whose sha256 differs from the index (empty = intact)."""
        return [s["file"] for s in self.index["shards"] if file_sha256(self.root / s["file"]) != s["sha256"]]

    def problems_for(
        self, *, video_frames: int, audio_frames: int, grid_hw: tuple[int, int], video_channels: int,
        audio_channels: int, caption_channels: int, sigmas: Sequence[float],
    ) -> list[str]:  # fmt: skip
        """Every mismatch between the stored shapes/sigmas and what the student expects."""
        ix = self.index
        t, f, c, h, w = ix["video_shape"]
        ta, n, ca = ix["audio_shape"]
        want = [float(s) for s in sigmas]
        p = []
        if (f, h, w) != (video_frames, *grid_hw):
            p.append(f"pairs hold video [F, H, W] = {[f, h, w]}, the student layout needs {[video_frames, *grid_hw]}")
        if n != audio_frames:
            p.append(f"pairs hold {n} audio latents, the student layout needs {audio_frames}")
        if c != video_channels or ca != audio_channels:
            p.append(f"pairs hold {c}/{ca} video/audio channels, the model has {video_channels}/{audio_channels}")
        if ix["text_shape"][1] != caption_channels:
            p.append(f"pairs hold {ix['text_shape'][1]}-channel text features, the model takes {caption_channels}")
        if t != ta or len(want) != t or any(abs(a - b) > 1e-6 for a, b in zip(self.sigmas, want)):
            p.append(f"pairs are stored at sigmas {self.sigmas}, the student steps through {want}")
        return p
