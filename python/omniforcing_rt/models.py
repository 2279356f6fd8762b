"""Named models and model directories: what ``--model`` resolves to.

A model directory holds ``model.json`` (geometry and sampling defaults) beside the transformer
weights in the LTX-2 checkpoint layout. The package ships one, ``default``: a small model of the
real LTX-2 architecture with **seeded random weights** (no training). It exercises every code path
(loading, streaming, caches, the engine) at laptop speed, but its output is noise-like; trained
weights replace it when the project's own distilled student ships. ``scripts/make_default_model.py``
regenerates it bit for bit.

``model.json`` keys (paths relative to the directory, or absolute):

- ``transformer`` (required): LTX-2 checkpoint (file, shard directory or index); ``generator``
  (optional): OmniForcing student weights applied on top; ``latent_grid_hw``, ``text_tokens``
  (required; 1024 for LTX-2), ``layout``, ``denoising_step_list``, ``convention``,
  ``audio_sink_tokens`` (optional);
- ``media`` (optional): checkpoint holding ``vae.*``, ``audio_vae.*``, ``vocoder.*``. Absent: the
  transformer checkpoint is used if it holds those keys (the LTX-2 single file does), else the
  model is latents-only;
- ``text_encoder`` (optional): a Hugging Face Gemma-3 directory; the aggregate projection and the
  two embeddings connectors then come from ``text_checkpoint`` (default: the transformer file).
  Absent: prompts are hashed to seeded features (:func:`~omniforcing_rt.pipeline.prompt.hashed_prompt_features`);
- ``video_decode`` (optional): ``{"left_context_latents": L, "lookahead_latents": R}`` of the
  streaming video decode (default one block each, see :mod:`omniforcing_rt.media.decode_worker`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from omniforcing_rt.errors import CheckpointError, ConfigError
from omniforcing_rt.model.config import Convention, ModelConfig
from omniforcing_rt.model.transformer import AVTransformer
from omniforcing_rt.model.weights import LTX_PREFIX, load_transformer
from omniforcing_rt.pipeline.layout import LayoutKind
from omniforcing_rt.pipeline.prompt import PromptFeatures, hashed_prompt_features
from omniforcing_rt.pipeline.stream import StreamConfig

if TYPE_CHECKING:
    from omniforcing_rt.media.decode_worker import MediaDecoders
    from omniforcing_rt.media.video_streaming import VideoStreamConfig
    from omniforcing_rt.text.encoder import PromptEncoder

__all__ = ["DEFAULT_MODEL_DIR", "LoadedModel", "init_random_weights", "load_model", "write_model_dir"]

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "default"
NAMED_MODELS = {"default": DEFAULT_MODEL_DIR}


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to stream."""

    name: str
    """Name or directory it was loaded from."""
    model: AVTransformer
    """The transformer (eval mode)."""
    stream: StreamConfig
    """Default stream geometry and sampling for this model."""
    text_tokens: int
    """Text context length the model expects (L)."""
    info: dict[str, Any]
    """The parsed model.json."""
    media: MediaDecoders | None = None
    """Video / audio decoders and vocoder (None: not requested, or a latents-only model)."""
    text_encoder: PromptEncoder | None = None
    """Gemma-3 text path (None: not requested, or a model without one: prompts are hashed)."""
    root: Path | None = None
    """The model directory."""

    def prompt_features(self, prompt: str) -> PromptFeatures:
        """Caption features of ``prompt``: the text encoder's, else the hashed stand-in."""
        if self.text_encoder is not None:
            return self.text_encoder.encode(prompt)
        return hashed_prompt_features(prompt, self.text_tokens, self.model.config.caption_channels)

    def video_policy(self) -> VideoStreamConfig:
        """Streaming video decode context from ``model.json`` ``video_decode`` (default one block each side)."""
        from omniforcing_rt.media.decode_worker import default_video_policy
        from omniforcing_rt.media.video_streaming import VideoStreamConfig

        spec = self.info.get("video_decode")
        if not spec:
            return default_video_policy(self.stream.block_frames)
        try:
            return VideoStreamConfig(**spec)
        except TypeError as e:
            raise ConfigError("invalid model.json video_decode", [str(e)]) from None


def load_model(
    name_or_dir: str | Path = "default",
    dtype: torch.dtype | None = None,
    *,
    media: bool = False,
    text_encoder: bool = False,
    text_dtype: torch.dtype = torch.bfloat16,
) -> LoadedModel:
    """Resolve ``default`` or a model directory and load it.

    Args:
        dtype: transformer (and media decoder) dtype; None keeps the checkpoint's.
        media: also load the media decoders when the model has them (``LoadedModel.media``).
        text_encoder: also load the Gemma text encoder when the model has one (heavy: 12B).
        text_dtype: dtype of the text encoder.
    """
    root = NAMED_MODELS.get(str(name_or_dir), Path(name_or_dir))
    manifest = root / "model.json"
    if not manifest.exists():
        known = ", ".join(NAMED_MODELS)
        raise CheckpointError(
            f"{name_or_dir!r} is neither a known model name ({known}) nor a directory with model.json"
        )
    try:
        info = json.loads(manifest.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{manifest} is not valid JSON: {e}") from None
    problems = [f"model.json lacks '{k}'" for k in ("transformer", "latent_grid_hw", "text_tokens") if k not in info]
    if problems:
        raise ConfigError(f"invalid {manifest}", problems)
    cfg = None
    if "audio_sink_tokens" in info:
        from omniforcing_rt.model.weights import checkpoint_files, read_metadata

        meta = read_metadata(checkpoint_files(root / info["transformer"]))
        cfg = ModelConfig.from_metadata(meta or {}, audio_sink_tokens=int(info["audio_sink_tokens"]))
    model, _, _ = load_transformer(
        root / info["transformer"], generator=_opt(root, info, "generator"), config=cfg, dtype=dtype
    )
    conv = Convention.teacher() if info.get("convention") == "teacher" else Convention.streaming()
    stream = StreamConfig(
        latent_grid_hw=tuple(info["latent_grid_hw"]),
        layout_kind=LayoutKind(info.get("layout", "release")),
        denoising_step_list=tuple(info.get("denoising_step_list", (1000, 909, 725, 421, 0))),
        convention=conv,
    )
    loaded = LoadedModel(str(name_or_dir), model, stream, int(info["text_tokens"]), info, root=root)
    if media:
        loaded = dataclasses.replace(loaded, media=_load_media(loaded, dtype))
    if text_encoder and info.get("text_encoder"):
        loaded = dataclasses.replace(loaded, text_encoder=_load_text_encoder(loaded, text_dtype))
    return loaded


def media_checkpoint(root: Path, info: dict[str, Any]) -> list[Path] | None:
    """Files holding the media decoders: ``media``, else the transformer's if it has ``vae.decoder.*`` keys."""
    from omniforcing_rt.model.weights import checkpoint_files

    if info.get("media"):
        return checkpoint_files(root / info["media"])
    files = checkpoint_files(root / info["transformer"])
    if files[0].suffix != ".safetensors":
        return None
    from safetensors import safe_open

    for f in files:
        with safe_open(str(f), framework="pt") as h:
            if any(k.startswith("vae.decoder.") for k in h.keys()):  # noqa: SIM118 (not a Mapping)
                return files
    return None


def _load_media(loaded: LoadedModel, dtype: torch.dtype | None) -> MediaDecoders | None:
    from omniforcing_rt.media.decode_worker import load_media_decoders

    assert loaded.root is not None
    files = media_checkpoint(loaded.root, loaded.info)
    if files is None:
        return None
    device = loaded.model.patchify_proj.weight.device
    decoders = load_media_decoders(files, dtype=dtype or torch.float32, device=device)
    cfg = loaded.model.config
    decoders.check_compatible(cfg.out_channels, cfg.audio_out_channels)
    return decoders


def _load_text_encoder(loaded: LoadedModel, dtype: torch.dtype) -> PromptEncoder:
    from omniforcing_rt.model.weights import checkpoint_files
    from omniforcing_rt.text.encoder import PromptEncoder

    assert loaded.root is not None
    info = loaded.info
    ckpt = checkpoint_files(loaded.root / info.get("text_checkpoint", info["transformer"]))
    device = loaded.model.patchify_proj.weight.device
    enc = PromptEncoder.from_pretrained(
        loaded.root / info["text_encoder"], ckpt, max_length=loaded.text_tokens, dtype=dtype, device=device
    )
    if enc.width != loaded.model.config.caption_channels:
        raise ConfigError(
            "text encoder does not fit the transformer",
            [
                f"contexts are {enc.width} wide, the transformer's caption_channels is {loaded.model.config.caption_channels}"
            ],
        )
    return enc


def _opt(root: Path, info: dict[str, Any], key: str) -> Path | None:
    return root / info[key] if info.get(key) else None


def init_random_weights(model: AVTransformer, seed: int) -> None:
    """Seeded initialisation: linear weights N(0, 1/fan_in), biases and tables small normals."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("weight") and p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
            elif name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)


def write_model_dir(root: Path, model: AVTransformer, info: dict[str, Any]) -> None:
    """Write ``transformer.safetensors`` (LTX-2 layout + config metadata) and ``model.json``."""
    from safetensors.torch import save_file

    root.mkdir(parents=True, exist_ok=True)
    state = {LTX_PREFIX + k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {"config": json.dumps({"transformer": model.config.to_metadata()})}
    save_file(state, str(root / "transformer.safetensors"), metadata=meta)
    (root / "model.json").write_text(json.dumps({"transformer": "transformer.safetensors", **info}, indent=1) + "\n")
