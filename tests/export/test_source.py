"""Sources an export accepts: a checkpoint written by our trainer, and a bare release-layout file."""

from __future__ import annotations

import json

import pytest
from omniforcing_rt.export.exporter import export_engine
from omniforcing_rt.export.options import ExportOptions
from omniforcing_rt.export.source import SourceOptions, resolve_source
from omniforcing_rt.export.verify import verify_export
from tests.helpers.tiny_model import TINY_REF, need, tiny_model

from omniforcing_rt.distill.checkpoint import prefixed, save_checkpoint
from omniforcing_rt.errors import ConfigError
from omniforcing_rt.models import write_model_dir


def _trainer_checkpoint(tmp_path):
    model = tiny_model(seed=9, audio_sink_tokens=2)
    stream = {"latent_grid_hw": [2, 3], "layout": "release", "denoising_step_list": [1000, 500, 0],
              "text_tokens": 8, "convention": "student", "audio_sink_tokens": 2, "stage": "dmd"}  # fmt: skip
    obj = {"generator": prefixed(model.state_dict()), "model_config": json.dumps(model.config.to_metadata()),
           "stream": json.dumps(stream), "config": "{}"}  # fmt: skip
    return save_checkpoint(tmp_path / "run" / "checkpoints", 7, obj, keep=1), model


def test_trainer_checkpoint_exports_and_verifies(tmp_path):
    ckpt, model = _trainer_checkpoint(tmp_path)
    opts = ExportOptions(formats=("onnx",), page_size_tokens=8, graphs=("text_kv",), progress=False)
    m = export_engine(ckpt, tmp_path / "e", opts)
    assert m.engine_config["denoising_step_list"] == [1000, 500, 0] and m.geometry["audio_sink_tokens"] == 2
    assert m.model_config["num_layers"] == model.config.num_layers
    rows = verify_export(tmp_path / "e")
    assert rows and all(r.status == "ok" for r in rows), rows


def test_bare_release_layout_checkpoint_needs_its_geometry(tmp_path):
    write_model_dir(tmp_path / "m", tiny_model(), {"latent_grid_hw": [2, 3], "text_tokens": 8})
    weights = tmp_path / "m" / "transformer.safetensors"  # LTX-2 prefix + config metadata, no model.json beside it
    bare = tmp_path / "bare.safetensors"
    weights.rename(bare)
    with pytest.raises(ConfigError, match="latent-grid-hw"):
        resolve_source(bare, tmp_path / "w")
    loaded = resolve_source(bare, tmp_path / "w", SourceOptions(latent_grid_hw=(2, 3), text_tokens=8))
    assert loaded.stream.latent_grid_hw == (2, 3) and loaded.text_tokens == 8


def test_official_reference_weights_export(tmp_path):
    # weights.safetensors of the shared fixture was written by the official ltx-core code (release layout).
    bare = need(TINY_REF) / "weights.safetensors"
    opts = ExportOptions(formats=("onnx",), page_size_tokens=8, graphs=("text_kv",), progress=False)
    src = SourceOptions(latent_grid_hw=(2, 2), text_tokens=8, convention="teacher")
    m = export_engine(bare, tmp_path / "e", opts, source_options=src)
    assert m.convention == "teacher"
    rows = verify_export(tmp_path / "e")
    assert rows and all(r.status == "ok" for r in rows), rows


def test_release_fp8_checkpoint_exports_with_its_own_bits(tmp_path):
    import torch
    from omniforcing_rt.export.fp8 import Fp8Linear
    from omniforcing_rt.export.load import load_export
    from safetensors.torch import save_file

    from omniforcing_rt.model.weights import FP8_DTYPE, LTX_PREFIX

    model = tiny_model(seed=2)
    fp8_keys = ("attn1.to_q.", "attn2.to_k.", "ff.net.0.proj.")  # a subset of the release's cast set
    state = {LTX_PREFIX + k: (v.to(FP8_DTYPE) if any(f"0.{s}" in k for s in fp8_keys) else v)
             for k, v in model.state_dict().items()}  # fmt: skip
    root = tmp_path / "m"
    root.mkdir()
    meta = {"config": json.dumps({"transformer": model.config.to_metadata()})}
    save_file({k: v.contiguous() for k, v in state.items()}, str(root / "transformer.safetensors"), metadata=meta)
    (root / "model.json").write_text(json.dumps({"transformer": "transformer.safetensors", "latent_grid_hw": [2, 3],
                                                 "text_tokens": 8}))  # fmt: skip
    opts = ExportOptions(formats=("onnx",), precision="fp8", fp8_mode="cast", fp8_activation_dtype="float32",
                         page_size_tokens=8, graphs=("text_kv",), progress=False)  # fmt: skip
    m = export_engine(root, tmp_path / "e", opts)
    ex = load_export(tmp_path / "e", need_aoti=False)
    q = ex.loaded.model.transformer_blocks[0].attn2.to_k
    assert isinstance(q, Fp8Linear) and torch.equal(q.weight.view(torch.uint8),
                                                     state[LTX_PREFIX + "transformer_blocks.0.attn2.to_k.weight"].view(torch.uint8))  # fmt: skip
    assert m.precision == "fp8" and m.fp8_mode == "cast"
    rows = verify_export(tmp_path / "e")
    assert rows and all(r.status == "ok" for r in rows), rows
