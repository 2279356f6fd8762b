"""The Gemma-3 text path through Hugging Face transformers, on a tiny random Gemma built here.

No download: the tokenizer is a WordLevel ``tokenizers`` model wrapped in PreTrainedTokenizerFast,
the model a 3-layer Gemma-3 text config with random weights; both are saved to a temporary
directory and loaded back through the real ``from_pretrained(local_files_only=True)`` path. The
projection and connectors are written under the real LTX-2 key layout.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from omniforcing_rt.errors import CheckpointError, ConfigError, InputError, UnsupportedError
from omniforcing_rt.media import weights as mw
from omniforcing_rt.media.feature_extractor import FeatureExtractorConfig, GemmaFeatureExtractor
from omniforcing_rt.media.text_connector import Embeddings1DConnector, TextConnectorConfig, encode_text_contexts
from omniforcing_rt.text import GemmaTextBackbone, PromptEncoder

transformers = pytest.importorskip("transformers")

WORDS = ["a", "red", "ball", "bounces", "on", "wooden", "floor", "dog", "barks", "twice", "the", "cat", "sleeps"]
L = 16  # text tokens (1024 for LTX-2); a multiple of the 4 registers
TEXT_META = {
    "transformer": {"rope_type": "split", "frequencies_precision": "float64", "connector_positional_embedding_max_pos": [4096]},
    "text_encoder_tiny": {
        "gemma_hidden_size": 16, "num_hidden_states": 4, "connector_num_attention_heads": 2,
        "connector_attention_head_dim": 8, "connector_num_layers": 1, "connector_num_learnable_registers": 4,
    },
}  # fmt: skip
FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "ltx2_tiny_media"


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.named_parameters():
            scale = 0.3 if t.ndim == 1 or name.endswith("registers") else 1 / math.sqrt(t.shape[1])
            t.copy_(
                1 + 0.1 * torch.randn(t.shape, generator=g)
                if "norm" in name
                else scale * torch.randn(t.shape, generator=g)
            )
    return module.eval()


@pytest.fixture(scope="module")
def gemma_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    root = tmp_path_factory.mktemp("gemma")
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3} | {w: i + 4 for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    fast.save_pretrained(root)
    cfg = transformers.Gemma3TextConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=3, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8, max_position_embeddings=64, sliding_window=4, query_pre_attn_scalar=8,
        pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.Gemma3ForCausalLM(cfg).save_pretrained(root)
    return root


@pytest.fixture(scope="module")
def ltx_text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ltx") / "ltx2.safetensors"
    conn_cfg = TextConnectorConfig.from_checkpoint_metadata(TEXT_META)
    parts = [
        (_randomize(GemmaFeatureExtractor(FeatureExtractorConfig(hidden_size=16, num_hidden_states=4)), 1), mw.FEATURE_EXTRACTOR_KEYS),
        (_randomize(Embeddings1DConnector(conn_cfg), 2), mw.VIDEO_CONNECTOR_KEYS),
        (_randomize(Embeddings1DConnector(conn_cfg), 3), mw.AUDIO_CONNECTOR_KEYS),
    ]  # fmt: skip
    state = {keys.checkpoint_key(n): t.contiguous() for m, keys in parts for n, t in m.state_dict().items()}
    save_file(state, str(path), metadata={"config": json.dumps(TEXT_META)})
    return path


@pytest.fixture(scope="module")
def encoder(gemma_dir: Path, ltx_text_file: Path) -> PromptEncoder:
    return PromptEncoder.from_pretrained(gemma_dir, ltx_text_file, max_length=L, dtype=torch.float32, cache_size=2)


def test_tokenizer_left_pads_and_truncates(encoder: PromptEncoder) -> None:
    ids, mask = encoder.backbone.tokenize("  a red ball bounces  ")
    assert ids.shape == mask.shape == (1, L)
    assert mask[0].tolist() == [0] * (L - 5) + [1] * 5  # BOS + 4 words, padding on the left
    assert ids[0, L - 5 :].tolist() == [2, 4, 5, 6, 7] and (ids[0, : L - 5] == 0).all()
    ids, mask = encoder.backbone.tokenize(" ".join(WORDS * 3))
    assert mask.all() and ids[0, 0] == 2  # truncated to L, BOS kept


def test_hidden_states_are_every_layer_at_absolute_positions(encoder: PromptEncoder) -> None:
    backbone = encoder.backbone
    assert isinstance(backbone, GemmaTextBackbone) and type(backbone.model).__name__ == "Gemma3TextModel"
    assert (backbone.hidden_size, backbone.num_hidden_states) == (16, 4)
    ids, mask = backbone.tokenize("the dog barks")
    states = backbone.hidden_states(ids, mask)
    assert len(states) == 4 and all(s.shape == (1, L, 16) for s in states)
    with torch.no_grad():  # no position_ids: HF numbers the left-padded sequence 0..L-1
        ref = backbone.model(input_ids=ids, attention_mask=mask, position_ids=torch.arange(L)[None],
                             output_hidden_states=True).hidden_states  # fmt: skip
        embed = backbone.model.embed_tokens(ids)
    valid = mask[0].bool()
    for s, r in zip(states, ref):
        assert torch.equal(s[0, valid], r[0, valid])
    assert torch.allclose(states[0], embed)  # index 0: the scaled embeddings


def test_prompt_features_equal_the_stages_run_by_hand(encoder: PromptEncoder) -> None:
    feats = encoder.encode("a red ball bounces on a wooden floor")
    assert feats.video.shape == feats.audio.shape == (1, L, 16)
    assert feats.mask is not None and feats.mask.dtype == torch.int64 and feats.mask.eq(1).all()
    assert not torch.allclose(feats.video, feats.audio)  # separate connector weights
    ids, mask = encoder.backbone.tokenize("a red ball bounces on a wooden floor")
    with torch.no_grad():
        states = encoder.backbone.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        ref = encode_text_contexts(encoder.feature_extractor(states, mask), mask, encoder.video_connector,
                                   encoder.audio_connector)  # fmt: skip
    assert torch.equal(feats.video, ref.video) and torch.equal(feats.audio, ref.audio)
    other = encoder.encode("the cat sleeps")
    assert (other.video - feats.video).abs().max() > 1e-3


def test_prompt_cache_is_lru(gemma_dir: Path, ltx_text_file: Path) -> None:
    enc = PromptEncoder.from_pretrained(gemma_dir, ltx_text_file, max_length=L, dtype=torch.float32, cache_size=2)
    calls = []
    run = enc.backbone.hidden_states
    enc.backbone.hidden_states = lambda *a: calls.append(1) or run(*a)  # type: ignore[method-assign]
    first = enc.encode("a red ball")
    assert enc.encode(" a red ball ") is first and len(calls) == 1  # key: the stripped prompt
    enc.encode("the dog barks")
    enc.encode("a red ball")  # refreshes "a red ball"
    enc.encode("the cat sleeps")  # evicts "the dog barks"
    assert len(calls) == 3
    enc.encode("a red ball")
    enc.encode("the dog barks")
    assert len(calls) == 4
    assert enc.cache_info() == {"hits": 3, "misses": 4, "size": 2, "capacity": 2}
    with pytest.raises(InputError):
        enc.encode(None)  # type: ignore[arg-type]


def test_parts_that_do_not_fit_are_refused(gemma_dir: Path, ltx_text_file: Path, tmp_path: Path) -> None:
    meta = json.loads(json.dumps(TEXT_META))
    meta["text_encoder_tiny"]["num_hidden_states"] = 49
    state = load_file(str(ltx_text_file))
    state["text_embedding_projection.aggregate_embed.weight"] = torch.zeros(16, 16 * 49)
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad), metadata={"config": json.dumps(meta)})
    with pytest.raises(ConfigError, match="hidden states"):
        PromptEncoder.from_pretrained(gemma_dir, bad, max_length=L, dtype=torch.float32)
    with pytest.raises(ConfigError, match="registers"):
        PromptEncoder.from_pretrained(gemma_dir, ltx_text_file, max_length=18, dtype=torch.float32)
    with pytest.raises(CheckpointError, match="config.json"):
        GemmaTextBackbone.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(UnsupportedError, match="bert"):
        GemmaTextBackbone.from_pretrained(tmp_path)


def test_multimodal_gemma3_directory_loads_the_language_model(tmp_path: Path, gemma_dir: Path) -> None:
    """A Gemma3ForConditionalGeneration checkpoint (the real 12B layout) runs text-only."""
    text = transformers.AutoConfig.from_pretrained(gemma_dir).to_dict()
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28,
                  patch_size=14)  # fmt: skip
    cfg = transformers.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4)
    torch.manual_seed(1)
    transformers.Gemma3ForConditionalGeneration(cfg).save_pretrained(tmp_path)
    transformers.AutoTokenizer.from_pretrained(gemma_dir).save_pretrained(tmp_path)
    backbone = GemmaTextBackbone.from_pretrained(tmp_path, max_length=L, dtype=torch.float32)
    assert type(backbone.model).__name__ == "Gemma3Model" and backbone.num_hidden_states == 4
    states = backbone.hidden_states(*backbone.tokenize("a red ball"))
    assert len(states) == 4 and states[-1].shape == (1, L, 16) and torch.isfinite(states[-1][0, -4:]).all()


@pytest.mark.skipif(not (FIXTURE / "io.safetensors").is_file(), reason="media fixture not available")
def test_post_gemma_stages_match_the_official_fixture() -> None:
    """Fixture hidden states (49 x [1, 16, 16]) through our encoder == ltx-core's contexts."""
    io = load_file(str(FIXTURE / "io.safetensors"))

    class FixtureBackbone:
        max_length, hidden_size, num_hidden_states = 16, 16, 49

    weights = FIXTURE / "weights.safetensors"
    video, audio = mw.load_text_connectors(weights)
    enc = PromptEncoder(FixtureBackbone(), mw.load_feature_extractor(weights), video, audio)  # type: ignore[arg-type]
    feats = enc.features_from_hidden_states(io["text.hidden_states"], io["text.attention_mask"])
    assert (feats.video - io["text.video_context"]).abs().max() <= 1e-4
    assert (feats.audio - io["text.audio_context"]).abs().max() <= 1e-4
    assert torch.equal(feats.mask, io["text.output_attention_mask"])


def test_model_dir_with_text_encoder(tmp_path: Path, gemma_dir: Path, ltx_text_file: Path, caplog) -> None:
    """``model.json`` ``text_encoder`` -> load_model / generate use Gemma instead of the hashed stand-in."""
    import shutil

    from omniforcing_rt.cli import main
    from omniforcing_rt.model.config import ModelConfig
    from omniforcing_rt.model.transformer import AVTransformer
    from omniforcing_rt.models import init_random_weights, load_model, write_model_dir

    cfg = ModelConfig(num_layers=1, num_attention_heads=2, attention_head_dim=8, in_channels=16, out_channels=16,
                      cross_attention_dim=16, caption_channels=16, audio_num_attention_heads=2,
                      audio_attention_head_dim=4, audio_in_channels=16, audio_out_channels=16,
                      audio_cross_attention_dim=8)  # fmt: skip
    model = AVTransformer(cfg)
    init_random_weights(model, 0)
    root = tmp_path / "model"
    shutil.copytree(gemma_dir, root / "gemma")
    shutil.copy(ltx_text_file, root / "text.safetensors")
    info = {"latent_grid_hw": [2, 2], "text_tokens": L, "text_encoder": "gemma", "text_checkpoint": "text.safetensors"}
    write_model_dir(root, model, info)
    loaded = load_model(root, text_encoder=True, text_dtype=torch.float32)
    assert loaded.text_encoder is not None and loaded.media is None
    feats = loaded.prompt_features("a red ball")
    assert torch.equal(feats.video, loaded.text_encoder.encode("a red ball").video)
    caplog.set_level("WARNING")
    assert (
        main(
            ["generate", "a red ball", "--model", str(root), "--seconds", "1", "--out", str(tmp_path / "o"), "--quiet"]
        )
        == 0
    )
    assert json.loads((tmp_path / "o" / "report.json").read_text())["text_encoder"] == "gemma"
    assert "hashed" not in caplog.text
    assert main(["generate", "--model", str(root), "--seconds", "1", "--out", str(tmp_path / "o.mp4")]) == 2
