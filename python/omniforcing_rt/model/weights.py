"""Checkpoint loading for the transformer: LTX-2 files, OmniForcing generators, training ``.pt``.

What is read (spec E, checkpoint-format.md):

* ``ltx-2-19b-dev`` layout: one safetensors file, a directory of shards, or a
  ``*.safetensors.index.json``; transformer keys under ``model.diffusion_model.``; the two
  embeddings connectors share that prefix but belong to the text side and are skipped here;
  VAE / vocoder / text keys are ignored. The architecture comes from the metadata ``config``
  (first shard). fp8 files keep ``float8_e4m3fn`` weights in memory and upcast at the matmul.
* OmniForcing generators (applied on top of base weights): the four key layouts
  ``model.diffusion_model.X``, ``model.velocity_model.X``, ``model.X`` and bare ``X``; training
  checkpoints (``.pt`` with ``generator`` / ``generator_ema`` / ``critic``).

Unlike the official loaders this one is strict: a missing or unexpected key, a key layout that
changes between keys, a tensor whose shape disagrees with the header's architecture, or an
unreadable file raises :class:`CheckpointError` naming the keys.

Memory: the model is built on the meta device and every tensor is assigned straight from the
memory-mapped file (``load_state_dict(assign=True)``), so peak host memory is one copy of the
weights (plus the dtype cast of one tensor at a time), not two. The 38 GB bf16 file needs ~38 GB.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from omniforcing_rt.errors import CheckpointError, ConfigError
from omniforcing_rt.model.config import Convention, ModelConfig
from omniforcing_rt.model.transformer import AVTransformer

__all__ = [
    "LTX_PREFIX",
    "LoadReport",
    "checkpoint_files",
    "iter_tensors",
    "load_transformer",
    "read_metadata",
    "remap_generator_keys",
]

log = logging.getLogger(__name__)

LTX_PREFIX = "model.diffusion_model."
TEXT_CONNECTOR_PREFIXES = ("video_embeddings_connector.", "audio_embeddings_connector.")
SINK_KEY = "audio_sink_tokens"
FP8_DTYPE = torch.float8_e4m3fn


@dataclass
class LoadReport:
    """What a load did, for logs and the CLI."""

    files: list[str] = field(default_factory=list)
    """Files read, in order."""
    skipped_prefixes: dict[str, int] = field(default_factory=dict)
    """Keys skipped by prefix (VAE, vocoder, text connectors, ...): prefix -> count."""
    generator_layout: str | None = None
    """Key layout detected for the generator checkpoint, if one was applied."""
    generator_keys: int = 0
    """How many transformer tensors the generator replaced."""
    fp8_tensors: int = 0
    """Tensors kept in float8_e4m3fn."""
    notices: list[str] = field(default_factory=list)
    """Things the user should know (dropped sink tokens, ...)."""


# ------------------------------------------------------------------------------------ files
def checkpoint_files(path: str | Path) -> list[Path]:
    """Resolve a checkpoint path to its safetensors shards (or one ``.pt``/``.pth`` file)."""
    p = Path(path)
    if p.is_dir():
        index = sorted(p.glob("*.safetensors.index.json"))
        if len(index) > 1:
            raise CheckpointError(f"{p} holds several index files: {[i.name for i in index]}")
        if index:
            return checkpoint_files(index[0])
        shards = sorted(p.glob("*.safetensors"))
        if not shards:
            raise CheckpointError(f"no *.safetensors or *.safetensors.index.json in {p}")
        return shards
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if p.name.endswith(".index.json"):
        try:
            weight_map = json.loads(p.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{p} is not a valid safetensors index (needs 'weight_map'): {e}") from None
        names = list(dict.fromkeys(weight_map.values()))
        missing = [n for n in names if not (p.parent / n).exists()]
        if missing:
            raise CheckpointError(f"{p} names shards that do not exist: {missing}")
        return [p.parent / n for n in names]
    return [p]


def read_metadata(files: list[Path]) -> dict[str, Any] | None:
    """The parsed ``config`` metadata of the first shard, or None if it has none."""
    first = files[0]
    if first.suffix != ".safetensors":
        return None
    try:
        with safe_open(str(first), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"cannot read {first}: {e}") from None
    if "config" not in meta:
        return None
    try:
        return json.loads(meta["config"])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{first}: metadata 'config' is not valid JSON: {e}") from None


def iter_tensors(files: Iterable[Path], keep: Any = None, use_ema: bool = False) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (key, tensor) from safetensors shards lazily (memory-mapped), or from a ``.pt``.

    ``keep(key) -> bool`` filters keys before any tensor is materialised; ``use_ema`` picks a
    training checkpoint's ``generator_ema`` entry instead of ``generator``.
    """
    seen: set[str] = set()
    for path in files:
        if path.suffix in (".pt", ".pth", ".bin"):
            yield from _iter_pt(path, keep, use_ema)
            continue
        try:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 (safe_open is not a Mapping)
                    if key in seen:
                        raise CheckpointError(f"key {key!r} appears in more than one shard (second: {path})")
                    seen.add(key)
                    if keep is None or keep(key):
                        yield key, f.get_tensor(key)
        except SafetensorError as e:
            raise CheckpointError(f"cannot read {path}: {e}") from None


def _iter_pt(path: Path, keep: Any, use_ema: bool) -> Iterator[tuple[str, torch.Tensor]]:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # torch raises many types for corrupt pickles
        raise CheckpointError(f"cannot read {path}: {e}") from None
    state = _pick_state_dict(obj, path, use_ema)
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
        if keep is None or keep(key):
            yield key, value


def _pick_state_dict(obj: Any, path: Path, use_ema: bool) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict, got {type(obj).__name__}")
    order = ("generator_ema",) if use_ema else ("generator", "model", "state_dict")
    for name in order:
        if name in obj and isinstance(obj[name], Mapping):
            return obj[name]
    if use_ema:
        raise CheckpointError(f"{path}: no 'generator_ema' entry (use_ema=True)")
    if all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise CheckpointError(f"{path}: no 'generator', 'model' or 'state_dict' entry; top-level keys: {list(obj)[:10]}")


# ------------------------------------------------------------------------------- key layouts
_GENERATOR_LAYOUTS = (
    ("ltx2", LTX_PREFIX),
    ("bidirectional-wrapper", "model.velocity_model."),
    ("causal-wrapper", "model."),
)
_FOREIGN_PREFIXES = (
    "vae.",
    "audio_vae.",
    "vocoder.",
    "text_embedding_projection.",
    "model.vae.",
    "model.audio_vae.",
    "model.vocoder.",
)


def remap_generator_keys(keys: Iterable[str]) -> tuple[str, dict[str, str]]:
    """Detect the layout of a generator's keys and map each transformer key to its module name.

    Every key is classified (not only the first, which the official loader trusts). A file whose
    keys mix two layouts is an error. Returns (layout name, {file key: module name}); keys of
    other components (VAE, vocoder, text) and the text connectors are left out of the map.
    """
    keys = list(keys)
    body = [k for k in keys if not k.startswith(_FOREIGN_PREFIXES)]
    if any(k.startswith(LTX_PREFIX) for k in body):
        layout, prefix = "ltx2", LTX_PREFIX
        stray = [k for k in body if not k.startswith(LTX_PREFIX) and k.rsplit(".", 1)[-1] != SINK_KEY]
        if stray:
            raise CheckpointError(
                f"checkpoint keys mix layouts: {len(stray)} keys lack the {LTX_PREFIX!r} prefix the others carry, "
                f"e.g. {stray[:3]}"
            )
        body = [k for k in body if k.startswith(LTX_PREFIX)]
    else:
        layout, prefix = "bare", ""
        for name, pre in _GENERATOR_LAYOUTS[1:]:
            if body and all(k.startswith(pre) for k in body):
                layout, prefix = name, pre
                break
        if layout == "bare":
            wrapped = [k for k in body if k.startswith("model.")]
            if wrapped:
                raise CheckpointError(
                    "generator keys mix layouts: some start with 'model.' and some do not, e.g. "
                    f"{wrapped[:2]} and {[k for k in body if not k.startswith('model.')][:2]}"
                )
    mapping = {k: SINK_KEY for k in keys if k.rsplit(".", 1)[-1] == SINK_KEY}
    for k in body:
        if k in mapping:
            continue
        name = k[len(prefix) :]
        if name.startswith(TEXT_CONNECTOR_PREFIXES):
            continue
        mapping[k] = name
    return layout, mapping


# ------------------------------------------------------------------------------------ loading
class UpcastLinear(nn.Linear):
    """A Linear whose stored weight stays in fp8; it is cast to the input dtype at each matmul.

    The cast per call costs bandwidth but halves resident memory, which is the point of the fp8
    file on a memory-bound host; the engine's TensorRT/fp8 GEMM path (export) avoids the cast.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return nn.functional.linear(x, self.weight.to(x.dtype), bias)


def _collect(files: list[Path], report: LoadReport, use_ema: bool) -> tuple[str, dict[str, torch.Tensor]]:
    """Read one checkpoint's transformer tensors keyed by module name (other keys are counted)."""
    if files[0].suffix == ".safetensors":
        keys = _all_keys(files)
        layout, mapping = remap_generator_keys(keys)
        tensors: Iterable[tuple[str, torch.Tensor]] = iter_tensors(files, keep=mapping.__contains__)
    else:
        raw = dict(iter_tensors(files, use_ema=use_ema))
        keys = list(raw)
        layout, mapping = remap_generator_keys(keys)
        tensors = raw.items()
    for k in keys:
        if k not in mapping:
            head = k[len(LTX_PREFIX) :] if k.startswith(LTX_PREFIX) else k
            prefix = head.split(".", 1)[0] + "."
            report.skipped_prefixes[prefix] = report.skipped_prefixes.get(prefix, 0) + 1
    return layout, {mapping[k]: v for k, v in tensors if k in mapping}


def _all_keys(files: list[Path]) -> list[str]:
    keys: list[str] = []
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as f:
                keys.extend(f.keys())
        except SafetensorError as e:
            raise CheckpointError(f"cannot read {path}: {e}") from None
    return keys


def _resolve_config(meta: dict[str, Any] | None, config: ModelConfig | None, source: str) -> ModelConfig:
    if config is not None:
        return config
    if meta is None:
        raise CheckpointError(f"{source} has no 'config' metadata; pass the architecture explicitly (config=...)")
    try:
        return ModelConfig.from_metadata(meta)
    except ConfigError as e:
        raise CheckpointError(f"{source}: {e}") from None


def _check_state(model: nn.Module, state: dict[str, torch.Tensor], report: LoadReport, source: str) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if SINK_KEY in state and SINK_KEY not in expected:
        del state[SINK_KEY]
        report.notices.append(f"{source}: dropped '{SINK_KEY}' (the model is configured without audio sink tokens)")
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {expected[k]}"
        for k in set(state) & set(expected)
        if tuple(state[k].shape) != expected[k]
    )
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
    if wrong:
        problems.append(f"{len(wrong)} tensors do not match the configured architecture: {wrong[:8]}")
    if problems:
        raise CheckpointError(f"{source} does not match the model:\n  - " + "\n  - ".join(problems))


def load_transformer(
    checkpoint: str | Path,
    *,
    generator: str | Path | None = None,
    use_ema: bool = False,
    config: ModelConfig | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
) -> tuple[AVTransformer, Convention, LoadReport]:
    """Load the transformer, optionally with an OmniForcing generator applied on top.

    Args:
        checkpoint: LTX-2 file / shard directory / index, or any generator layout on its own.
        generator: optional generator checkpoint (safetensors in any of the four layouts,
            shards, or a training ``.pt``); every tensor it holds replaces the base one.
        use_ema: take ``generator_ema`` from a training ``.pt``.
        config: architecture override (required when the files carry no ``config`` metadata).
        dtype: cast floating weights to this dtype (fp8 weights stay fp8 and upcast at matmul).
        device: target device.

    Returns:
        (model in eval mode, the convention the header asks for, a load report).

    Raises:
        CheckpointError: unreadable files, missing/unexpected keys, shape mismatches.
    """
    report = LoadReport()
    files = checkpoint_files(checkpoint)
    report.files += [str(f) for f in files]
    meta = read_metadata(files)
    _, state = _collect(files, report, use_ema=False)
    cfg = _resolve_config(meta, config, str(checkpoint))
    if generator is not None:
        gfiles = checkpoint_files(generator)
        report.files += [str(f) for f in gfiles]
        layout, gstate = _collect(gfiles, report, use_ema=use_ema)
        report.generator_layout = layout
        with torch.device("meta"):
            probe = AVTransformer(cfg)
        unknown = sorted(set(gstate) - set(probe.state_dict()) - {SINK_KEY})
        if unknown:
            raise CheckpointError(f"generator {generator} has keys the model does not: {unknown[:8]}")
        report.generator_keys = len(gstate)
        state.update(gstate)
    with torch.device("meta"):
        model = AVTransformer(cfg)
    _check_state(model, state, report, str(checkpoint))
    for k, v in list(state.items()):
        if v.dtype == FP8_DTYPE:
            report.fp8_tensors += 1
        elif dtype is not None and v.is_floating_point():
            state[k] = v.to(dtype)
    model.load_state_dict(state, strict=True, assign=True)
    if report.fp8_tensors:
        for module in model.modules():
            if type(module) is nn.Linear and module.weight.dtype == FP8_DTYPE:
                module.__class__ = UpcastLinear
    for note in report.notices:
        log.warning(note)
    section = (meta or {}).get("transformer", meta or {})
    return model.to(device).eval(), Convention.from_metadata(section), report
