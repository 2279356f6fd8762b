"""Strict loading of the media components from an LTX-2 safetensors checkpoint.

Key layout of the real file (spec-media.md 1.1) and the module-relative names it maps to:

==========================  ================================================  ==========================
component                   checkpoint prefix                                 module prefix
==========================  ================================================  ==========================
video decoder               ``vae.decoder.``                                  (none)
                            ``vae.per_channel_statistics.``                   ``per_channel_statistics.``
audio decoder               ``audio_vae.decoder.``                            (none)
                            ``audio_vae.per_channel_statistics.``             ``per_channel_statistics.``
vocoder                     ``vocoder.``                                      (none)
feature extractor           ``text_embedding_projection.``                    (none)
video connector             ``model.diffusion_model.video_embeddings_connector.``  (none)
audio connector             ``model.diffusion_model.audio_embeddings_connector.``  (none)
==========================  ================================================  ==========================

Unlike ltx-core (``strict=False``, missing tensors silently left on the meta device), loading is
strict per component: a missing key, an unexpected key under the component's prefixes, or a
shape mismatch raises :class:`CheckpointError` naming every offending key. Keys of other
components (the transformer, the encoders) are ignored. The module is built on the meta device
and the tensors are assigned (``load_state_dict(assign=True)``), so the weights exist in memory
once, in the requested dtype (float32 by default: the compute dtype of the fixtures; the file's
bf16 video VAE / connectors are upcast).

A checkpoint may be one file or a list of shards; the architecture is read from the ``config``
metadata of the first shard, like ltx-core.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import safe_open
from torch import nn

from omniforcing_rt.errors import CheckpointError
from omniforcing_rt.media.audio_vae import AudioDecoder, AudioDecoderConfig
from omniforcing_rt.media.feature_extractor import FeatureExtractorConfig, GemmaFeatureExtractor
from omniforcing_rt.media.text_connector import Embeddings1DConnector, TextConnectorConfig
from omniforcing_rt.media.video_vae import VideoDecoder, VideoDecoderConfig
from omniforcing_rt.media.vocoder import Vocoder, VocoderConfig

__all__ = [
    "AUDIO_CONNECTOR_KEYS",
    "AUDIO_DECODER_KEYS",
    "FEATURE_EXTRACTOR_KEYS",
    "VIDEO_CONNECTOR_KEYS",
    "VIDEO_DECODER_KEYS",
    "VOCODER_KEYS",
    "ComponentKeys",
    "load_audio_decoder",
    "load_component",
    "load_feature_extractor",
    "load_text_connectors",
    "load_video_decoder",
    "load_vocoder",
    "read_checkpoint_config",
]

CheckpointPath = str | Path | Sequence[str | Path]
M = TypeVar("M", bound=nn.Module)


@dataclass(frozen=True)
class ComponentKeys:
    """Which checkpoint keys belong to one component and how they are renamed."""

    name: str
    """Human-readable component name (for error messages)."""
    prefixes: tuple[tuple[str, str], ...]
    """(checkpoint prefix, module prefix) pairs; a key matches the first prefix it starts with."""

    def module_name(self, key: str) -> str | None:
        """Module-relative name of a checkpoint key, or None if the key is not this component's."""
        for ckpt, mod in self.prefixes:
            if key.startswith(ckpt):
                return mod + key[len(ckpt) :]
        return None

    def checkpoint_key(self, module_name: str) -> str:
        """Checkpoint key of a module-relative name (the longest matching module prefix wins)."""
        for ckpt, mod in sorted(self.prefixes, key=lambda p: len(p[1]), reverse=True):
            if module_name.startswith(mod):
                return ckpt + module_name[len(mod) :]
        raise KeyError(module_name)


VIDEO_DECODER_KEYS = ComponentKeys(
    "video decoder", (("vae.decoder.", ""), ("vae.per_channel_statistics.", "per_channel_statistics."))
)
AUDIO_DECODER_KEYS = ComponentKeys(
    "audio decoder", (("audio_vae.decoder.", ""), ("audio_vae.per_channel_statistics.", "per_channel_statistics."))
)
VOCODER_KEYS = ComponentKeys("vocoder", (("vocoder.", ""),))
FEATURE_EXTRACTOR_KEYS = ComponentKeys("feature extractor", (("text_embedding_projection.", ""),))
VIDEO_CONNECTOR_KEYS = ComponentKeys("video connector", (("model.diffusion_model.video_embeddings_connector.", ""),))
AUDIO_CONNECTOR_KEYS = ComponentKeys("audio connector", (("model.diffusion_model.audio_embeddings_connector.", ""),))


def _paths(path: CheckpointPath) -> list[Path]:
    paths = [Path(path)] if isinstance(path, str | Path) else [Path(p) for p in path]
    if not paths:
        raise CheckpointError("no checkpoint file given")
    for p in paths:
        if not p.is_file():
            raise CheckpointError(f"checkpoint file not found: {p}")
    return paths


def read_checkpoint_config(path: CheckpointPath) -> dict[str, Any]:
    """The ``config`` metadata JSON of the (first shard of the) checkpoint.

    Raises:
        CheckpointError: no metadata ``config`` key, or it is not a JSON object.
    """
    first = _paths(path)[0]
    with safe_open(str(first), framework="pt", device="cpu") as f:
        meta = f.metadata() or {}
    if "config" not in meta:
        raise CheckpointError(f"{first}: safetensors metadata has no 'config' key")
    try:
        config = json.loads(meta["config"])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{first}: metadata 'config' is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{first}: metadata 'config' must be a JSON object")
    return config


def _component_entries(handles: Sequence[Any], keys: ComponentKeys) -> Iterator[tuple[str, str, Any]]:
    """(module name, checkpoint key, file handle) for every checkpoint key of the component."""
    for handle in handles:
        for key in list(handle.keys()):  # a safe_open handle is not a Mapping
            name = keys.module_name(key)
            if name is not None:
                yield name, key, handle


def _check_keys(
    expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[str, Any]], keys: ComponentKeys
) -> None:
    problems = []
    missing = sorted(set(expected) - set(found))
    if missing:
        shown = [keys.checkpoint_key(m) for m in missing]
        problems.append(f"missing {len(missing)} key(s): {', '.join(shown)}")
    unexpected = sorted(found[n][0] for n in set(found) - set(expected))
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} key(s): {', '.join(unexpected)}")
    for name in sorted(set(found) & set(expected)):
        key, handle = found[name]
        shape = tuple(handle.get_slice(key).get_shape())
        if shape != expected[name]:
            problems.append(f"{key}: shape {list(shape)} in the checkpoint, the model expects {list(expected[name])}")
    if problems:
        raise CheckpointError(f"{keys.name} weights do not match its architecture:\n  - " + "\n  - ".join(problems))


def load_component(
    factory: Callable[[], M],
    path: CheckpointPath,
    keys: ComponentKeys,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> M:
    """Build a module on the meta device and assign its weights from the checkpoint, strictly.

    Args:
        factory: builds the (empty) module; called under ``torch.device('meta')``.
        path: checkpoint file or shards.
        keys: the component's key prefixes.
        dtype: dtype of every floating-point tensor after loading.
        device: where the tensors are placed.

    Returns:
        The module in eval mode.

    Raises:
        CheckpointError: missing / unexpected keys or shape mismatches (all listed).
    """
    with torch.device("meta"):
        module = factory()
    expected = {name: tuple(t.shape) for name, t in module.state_dict(keep_vars=True).items()}
    with ExitStack() as stack:
        handles = [stack.enter_context(safe_open(str(p), framework="pt", device="cpu")) for p in _paths(path)]
        found: dict[str, tuple[str, Any]] = {}
        for name, key, handle in _component_entries(handles, keys):
            found[name] = (key, handle)
        _check_keys(expected, found, keys)
        state = {}
        for name, (key, handle) in found.items():
            tensor = handle.get_tensor(key)
            state[name] = tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else tensor.dtype)
    module.load_state_dict(state, strict=True, assign=True)
    leftovers = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if leftovers:
        raise CheckpointError(f"{keys.name}: tensors left on the meta device: {', '.join(leftovers)}")
    return module.eval()


def load_video_decoder(
    path: CheckpointPath, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
    config: VideoDecoderConfig | None = None,
) -> VideoDecoder:  # fmt: skip
    """The video VAE decoder; architecture from the checkpoint ``vae`` section unless given."""
    cfg = config or VideoDecoderConfig.from_checkpoint_metadata(read_checkpoint_config(path))
    return load_component(lambda: VideoDecoder(cfg), path, VIDEO_DECODER_KEYS, dtype=dtype, device=device)


def load_audio_decoder(
    path: CheckpointPath, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
    config: AudioDecoderConfig | None = None,
) -> AudioDecoder:  # fmt: skip
    """The audio VAE decoder; architecture from the checkpoint ``audio_vae`` section unless given."""
    cfg = config or AudioDecoderConfig.from_checkpoint_metadata(read_checkpoint_config(path))
    return load_component(lambda: AudioDecoder(cfg), path, AUDIO_DECODER_KEYS, dtype=dtype, device=device)


def load_vocoder(
    path: CheckpointPath, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
    config: VocoderConfig | None = None,
) -> Vocoder:  # fmt: skip
    """The vocoder (fp32 by default, its stored dtype); architecture from the ``vocoder`` section."""
    cfg = config or VocoderConfig.from_checkpoint_metadata(read_checkpoint_config(path))
    return load_component(lambda: Vocoder(cfg), path, VOCODER_KEYS, dtype=dtype, device=device)


def load_feature_extractor(
    path: CheckpointPath, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
    config: FeatureExtractorConfig | None = None,
) -> GemmaFeatureExtractor:  # fmt: skip
    """The Gemma feature extractor's ``aggregate_embed`` projection."""
    cfg = config or FeatureExtractorConfig.from_checkpoint_metadata(read_checkpoint_config(path))
    return load_component(lambda: GemmaFeatureExtractor(cfg), path, FEATURE_EXTRACTOR_KEYS, dtype=dtype, device=device)


def load_text_connectors(
    path: CheckpointPath, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
    config: TextConnectorConfig | None = None, max_pos: int | None = None,
) -> tuple[Embeddings1DConnector, Embeddings1DConnector]:  # fmt: skip
    """The (video, audio) embeddings connectors.

    Args:
        max_pos: overrides the header's ``connector_positional_embedding_max_pos`` (ignored when
            ``config`` is given).
    """
    cfg = config or TextConnectorConfig.from_checkpoint_metadata(read_checkpoint_config(path), max_pos=max_pos)
    kw: dict[str, Any] = dict(dtype=dtype, device=device)
    video = load_component(lambda: Embeddings1DConnector(cfg), path, VIDEO_CONNECTOR_KEYS, **kw)
    audio = load_component(lambda: Embeddings1DConnector(cfg), path, AUDIO_CONNECTOR_KEYS, **kw)
    return video, audio
