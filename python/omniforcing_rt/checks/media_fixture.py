"""Check the media components (video VAE, audio VAE, vocoder, text path) against a media fixture.

Fixture format: ``shared/fixtures/README.md`` ("Media fixture format"). Everything is taken from
the fixture itself: the architectures from the ``config`` metadata of ``weights.safetensors``
(sections ``vae``, ``audio_vae``, ``vocoder``, ``transformer``, ``text_encoder_tiny``), the
temporal / spatial tiling from ``config.json`` ``tiling.config``, and the remaining sizes (how
many latents a prefix decode uses) from the reference tensors' shapes. The components are loaded
through the strict loader of :mod:`omniforcing_rt.media.weights`, so a fixture whose weights do
not match its own config fails loudly.

Each stage is fed the fixture's own input of that stage when it is stored (for example the
vocoder runs on the reference ``audio.mel``, the connectors on ``text.aggregate_out``), so a
failure points at one component; otherwise our own upstream result is used.

Every key of ``io.safetensors`` gets one row: ``input`` (fed to a component), ``ok`` / ``FAIL``
(max |diff| against :data:`FIXTURE_TOLERANCE`), or ``not covered`` (a key this checker has no rule
for, a component variant this port does not implement, or a missing input; the row's ``note``
says which). A component that cannot be built (bad config, mismatched weights) fails all of its
keys with the reason in ``note``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from omniforcing_rt.checks.report import FIXTURE_TOLERANCE, Row, compare
from omniforcing_rt.errors import OfrtError, UnsupportedError
from omniforcing_rt.media import weights as media_weights
from omniforcing_rt.media.audio_vae import audio_latent_to_tokens
from omniforcing_rt.media.feature_extractor import normalize_and_concat_hidden_states
from omniforcing_rt.media.text_connector import TextConnectorConfig, encode_text_contexts
from omniforcing_rt.media.video_tiling import TilingConfig, tiled_decode

__all__ = ["MEDIA_INPUT_KEYS", "MediaRow", "check_media_fixture", "check_media_fixture_rows", "is_media_fixture"]

logger = logging.getLogger(__name__)

MEDIA_INPUT_KEYS = frozenset({"video.latent", "audio.latent", "text.hidden_states", "text.attention_mask"})
"""Keys that are inputs of the media components, not reference outputs."""
_GROUPS = ("video", "audio", "vocoder", "text")
_MAXPOS_KEY = re.compile(r"^text\.(video|audio)_context_maxpos(\d+)$")
_MEDIA_WEIGHT_PREFIXES = (
    "vae.",
    "audio_vae.",
    "vocoder.",
    "text_embedding_projection.",
    "model.diffusion_model.video_embeddings_connector.",
    "model.diffusion_model.audio_embeddings_connector.",
)


@dataclass(frozen=True)
class MediaRow(Row):
    """A :class:`Row` with the reason a key was not compared or failed without a diff."""

    note: str = ""


def is_media_fixture(fixture_dir: Path) -> bool:
    """True if the directory holds a media fixture: the three files, media io keys, media weights."""
    d = Path(fixture_dir)
    files = [d / "weights.safetensors", d / "io.safetensors", d / "config.json"]
    if not all(f.is_file() for f in files):
        return False
    try:
        with safe_open(str(files[1]), framework="pt") as f:
            io_keys = list(f.keys())
        with safe_open(str(files[0]), framework="pt") as f:
            weight_keys = list(f.keys())
    except (OSError, ValueError, RuntimeError):
        return False
    has_io = any(k.split(".", 1)[0] in _GROUPS for k in io_keys)
    return has_io and any(k.startswith(_MEDIA_WEIGHT_PREFIXES) for k in weight_keys)


class _Fixture:
    """The loaded fixture: weights path, io tensors, config.json, and lazily loaded components."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.weights = root / "weights.safetensors"
        self.io: dict[str, torch.Tensor] = load_file(str(root / "io.safetensors"))
        self.config: dict[str, Any] = json.loads((root / "config.json").read_text())

    def ref(self, key: str) -> torch.Tensor:
        """A reference tensor; raises :class:`_MissingInputError` naming a missing input."""
        if key not in self.io:
            raise _MissingInputError(key)
        return self.io[key]


class _MissingInputError(Exception):
    """A stage's input tensor is not in the fixture."""


Predictions = dict[str, torch.Tensor]


def _video(fx: _Fixture) -> Predictions:
    decoder = media_weights.load_video_decoder(fx.weights)
    latent = fx.ref("video.latent")
    out: Predictions = {"video.latent_unnormalized": decoder.per_channel_statistics.un_normalize(latent)}
    out["video.decoded"] = decoder(latent)
    if "video.decoded_first_latent_only" in fx.io:
        frames = fx.io["video.decoded_first_latent_only"].shape[2]
        n = (frames - 1) // decoder.config.temporal_factor + 1
        out["video.decoded_first_latent_only"] = decoder(latent[:, :, :n])
    if {"video.tiled_decoded", "video.tiled_chunk_lengths"} & set(fx.io):
        tiling_cfg = fx.config.get("tiling", {}).get("config")
        if tiling_cfg is None:
            raise _MissingInputError("config.json tiling.config")
        chunks = list(tiled_decode(decoder, latent, TilingConfig.from_dict(tiling_cfg)))
        out["video.tiled_decoded"] = torch.cat(chunks, dim=2)
        out["video.tiled_chunk_lengths"] = torch.tensor([c.shape[2] for c in chunks], dtype=torch.int64)
    return out


def _audio(fx: _Fixture) -> Predictions:
    decoder = media_weights.load_audio_decoder(fx.weights)
    latent = fx.ref("audio.latent")
    out: Predictions = {"audio.latent_tokens": audio_latent_to_tokens(latent), "audio.mel": decoder(latent)}
    if "audio.mel_prefix" in fx.io:
        # T latents give 4T - 3 mel frames; the prefix length is read off the reference.
        n = decoder.config.num_latents(fx.io["audio.mel_prefix"].shape[2])
        out["audio.mel_prefix"] = decoder(latent[:, :, :n])
    return out


def _vocoder(fx: _Fixture) -> Predictions:
    vocoder = media_weights.load_vocoder(fx.weights)
    return {"vocoder.waveform": vocoder(fx.ref("audio.mel"))}


def _text(fx: _Fixture) -> Predictions:
    extractor = media_weights.load_feature_extractor(fx.weights)
    video, audio = media_weights.load_text_connectors(fx.weights)
    mask = fx.ref("text.attention_mask")
    out: Predictions = {}
    if "text.hidden_states" in fx.io:
        out["text.normed_concat"] = normalize_and_concat_hidden_states(
            extractor.stack(fx.io["text.hidden_states"]), mask
        )
    normed = fx.io.get("text.normed_concat", out.get("text.normed_concat"))
    if normed is None:
        raise _MissingInputError("text.hidden_states or text.normed_concat")
    out["text.aggregate_out"] = extractor.project(normed)
    features = fx.io.get("text.aggregate_out", out["text.aggregate_out"])
    out["text.video_connector_after_registers"] = video.replace_padding_with_registers(features, mask)
    contexts = encode_text_contexts(features, mask, video, audio)
    out.update({"text.video_context": contexts.video, "text.audio_context": contexts.audio})
    out["text.output_attention_mask"] = contexts.attention_mask
    for key in fx.io:
        # "<video|audio>_context_maxpos<N>": the connector output with max_pos forced to N.
        match = _MAXPOS_KEY.match(key)
        if match:
            meta = media_weights.read_checkpoint_config(fx.weights)
            cfg = TextConnectorConfig.from_checkpoint_metadata(meta, max_pos=int(match.group(2)))
            video_n, audio_n = media_weights.load_text_connectors(fx.weights, config=cfg)
            out[key] = getattr(encode_text_contexts(features, mask, video_n, audio_n), match.group(1))
    return out


_STAGES: dict[str, Callable[[_Fixture], Predictions]] = {
    "video": _video,
    "audio": _audio,
    "vocoder": _vocoder,
    "text": _text,
}


def _run_stage(fx: _Fixture, group: str) -> tuple[Predictions, MediaRow | None]:
    """Predictions of one group, or a template row (status + note) explaining why there are none."""
    try:
        with torch.no_grad():
            return _STAGES[group](fx), None
    except _MissingInputError as e:
        return {}, MediaRow("", None, "not covered", f"fixture lacks input {e.args[0]}")
    except UnsupportedError as e:
        return {}, MediaRow("", None, "not covered", f"unsupported variant: {e}")
    except OfrtError as e:
        logger.warning("media fixture %s group %s failed: %s", fx.root, group, e)
        return {}, MediaRow("", None, "FAIL", f"{type(e).__name__}: {e}")


def check_media_fixture_rows(fixture_dir: Path) -> list[Row]:
    """One :class:`Row` per key of ``io.safetensors`` (see the module docstring)."""
    fx = _Fixture(Path(fixture_dir))
    by_group: dict[str, list[str]] = {}
    for key in sorted(fx.io):
        by_group.setdefault(key.split(".", 1)[0], []).append(key)
    rows: list[Row] = []
    for group, keys in by_group.items():
        outputs = [k for k in keys if k not in MEDIA_INPUT_KEYS]
        preds, failure = _run_stage(fx, group) if group in _STAGES and outputs else ({}, None)
        for key in keys:
            if key in MEDIA_INPUT_KEYS:
                rows.append(Row(key, None, "input"))
            elif failure is not None:
                rows.append(MediaRow(key, None, failure.status, failure.note))
            elif key in preds:
                rows.append(compare(key, preds[key], fx.io[key], FIXTURE_TOLERANCE))
            else:
                rows.append(MediaRow(key, None, "not covered", "no rule for this key"))
    return sorted(rows, key=lambda r: r.key)


def check_media_fixture(fixture_dir: Path) -> list[tuple[str, float | None, str]]:
    """``(key, max_abs_diff or None, status)`` per io key; status 'ok', 'FAIL', 'not covered' or 'input'."""
    return [(r.key, r.diff, r.status) for r in check_media_fixture_rows(fixture_dir)]
