"""export.json: round trip, and every way a directory can be wrong (missing, corrupt, hash, config)."""

from __future__ import annotations

import json

import pytest
from omniforcing_rt.export.load import load_export, manifest_config
from omniforcing_rt.export.manifest import MANIFEST_NAME, ExportManifest, check_artefacts

from omniforcing_rt.engine_config import EngineConfig
from omniforcing_rt.errors import CheckpointError, ConfigError

from .conftest import GRAPHS, PAGE


def test_manifest_round_trip_and_contents(engine_dir):
    m = ExportManifest.read(engine_dir)
    assert ExportManifest.read(engine_dir).to_json() == (engine_dir / MANIFEST_NAME).read_text() == m.to_json()
    assert m.precision == "fp32" and m.formats == ("aoti", "onnx") and m.opset == 23
    assert m.engine_config["page_size_tokens"] == PAGE and m.engine_config["dtype"] == "float32"
    assert m.engine_config["denoising_step_list"] == [1000, 909, 725, 421, 0]
    assert m.geometry["latent_grid_hw"] == [2, 3] and m.geometry["block_frames"] == 3
    assert set(m.graphs) == set(GRAPHS)
    assert m.graphs["denoise_block0"]["video_tokens"] == 4 * 6 and m.graphs["refresh_block"]["video_tokens"] == 3 * 6
    assert m.graphs["refresh_block"]["outputs"][0] == "new_video_self_k"
    assert {"torch", "onnx", "onnxruntime", "tensorrt"} <= set(m.tool_versions)
    graph_files = [a.path for a in m.artefacts if a.kind in ("onnx", "aoti-package")]
    assert graph_files and all(m.config_hash in p for p in graph_files)  # names carry the hash
    check_artefacts(engine_dir, m)
    ex = load_export(engine_dir)  # the hashes recompute
    assert ex.config.page_size_tokens == PAGE and ex.manifest.config_hash == m.config_hash


def test_missing_artefact_is_a_checkpoint_error(engine_copy):
    m = ExportManifest.read(engine_copy)
    (engine_copy / m.artefact("onnx", "text_kv").path).unlink()
    with pytest.raises(CheckpointError, match="missing artefact onnx/text_kv"):
        load_export(engine_copy)


def test_corrupt_artefact_is_a_checkpoint_error(engine_copy):
    m = ExportManifest.read(engine_copy)
    path = engine_copy / m.artefact("aoti-package").path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt artefact aoti/denoiser-.*sha256"):
        load_export(engine_copy)


def test_corrupt_manifest_is_a_checkpoint_error(engine_copy):
    (engine_copy / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(CheckpointError, match="is corrupt"):
        load_export(engine_copy)


def test_hash_mismatch_is_a_checkpoint_error(engine_copy):
    # A forged manifest entry: consistent artefact list, but a hash the model does not produce.
    d = json.loads((engine_copy / MANIFEST_NAME).read_text())
    d["engine_config_hash"] = "0" * 16
    (engine_copy / MANIFEST_NAME).write_text(json.dumps(d))
    with pytest.raises(CheckpointError, match="(?s)hash mismatch.*engine_config_hash: recomputed"):
        load_export(engine_copy)


def test_config_mismatch_is_a_config_error_listing_every_field(engine_dir):
    m = ExportManifest.read(engine_dir)
    bad = manifest_config(m, dtype="bfloat16", page_size_tokens=32, latent_grid_hw=(4, 6))
    with pytest.raises(ConfigError) as err:
        load_export(engine_dir, bad)
    text = str(err.value)
    assert "dtype: requested 'bfloat16'" in text and "page_size_tokens: requested 32" in text
    assert "latent_grid_hw" in text and len(err.value.problems) == 3


def test_free_fields_do_not_count_as_a_mismatch(engine_dir):
    cfg = manifest_config(ExportManifest.read(engine_dir), video_window_s=1.0, max_streams=1, queue_depth=3)
    assert load_export(engine_dir, cfg).config.video_window_s == 1.0
    default_page = EngineConfig()  # page size 64 != the export's 16
    with pytest.raises(ConfigError, match="page_size_tokens"):
        load_export(engine_dir, default_page)
