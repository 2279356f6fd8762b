"""The CLI: verify-export exit codes (0 within tolerance, non-zero on a damaged directory), export errors."""

from __future__ import annotations

import json

import pytest
from omniforcing_rt.export.manifest import ExportManifest

from omniforcing_rt.cli import main


def test_verify_export_passes_and_prints_max_diff_per_output(engine_dir, capsys, tmp_path):
    rc = main(["verify-export", str(engine_dir), "--graphs", "text_kv", "--json", str(tmp_path / "rows.json")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "max|diff|" in out and "text_video_k" in out and "onnxruntime" in out
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert {r["output"] for r in rows} == {"text_video_k", "text_video_v", "text_audio_k", "text_audio_v", "text_mask"}


def test_verify_export_fails_on_a_tampered_artefact(engine_copy, capsys):
    m = ExportManifest.read(engine_copy)
    path = engine_copy / m.artefact("onnx", "text_kv").path
    path.write_bytes(path.read_bytes()[:-10])
    assert main(["verify-export", str(engine_copy)]) == 2
    assert "CheckpointError" in capsys.readouterr().err


def test_verify_export_fails_beyond_tolerance(engine_copy, capsys):
    # An edited graph whose manifest entry is re-recorded: the hashes pass, only the numbers catch it.
    import dataclasses

    import numpy as np
    import onnx
    from omniforcing_rt.export.manifest import make_artefact
    from onnx import numpy_helper

    m = ExportManifest.read(engine_copy)
    art = m.artefact("onnx", "text_kv")
    model = onnx.load(str(engine_copy / art.path))
    init = next(i for i in model.graph.initializer if i.name.endswith("to_k.weight"))
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + np.float32(0.5), init.name))
    onnx.save(model, str(engine_copy / art.path))
    arts = tuple(make_artefact(engine_copy, a.path, a.kind, a.graph) if a == art else a for a in m.artefacts)
    dataclasses.replace(m, artefacts=arts).write(engine_copy)
    assert main(["verify-export", str(engine_copy), "--graphs", "text_kv"]) == 1
    captured = capsys.readouterr()
    assert "FAIL" in captured.out and "beyond tolerance" in captured.err


def test_export_refuses_a_non_empty_directory_and_unknown_models(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    assert main(["export", "default", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "y"), "--quiet"]) == 2
    assert "CheckpointError" in capsys.readouterr().err


@pytest.mark.skipif(__import__("importlib").util.find_spec("tensorrt") is not None, reason="TensorRT is installed")
def test_export_to_trt_without_tensorrt_says_why(tmp_path, capsys):
    assert main(["export", "default", "--format", "trt", "--out", str(tmp_path / "t"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "UnsupportedError" in err and "tensorrt" in err
    assert not (tmp_path / "t").exists()


def test_verify_export_of_bf16_graphs_on_cpu_says_why_and_fails(tiny_dir, tmp_path, capsys):
    # onnxruntime's CPU provider has no bf16 Gemm/MatMul: nothing can be verified here, and the
    # exit code must not claim otherwise.
    from omniforcing_rt.export.exporter import export_engine
    from omniforcing_rt.export.options import ExportOptions

    opts = ExportOptions(formats=("onnx",), precision="bf16", page_size_tokens=16, graphs=("text_kv",), progress=False)
    export_engine(tiny_dir, tmp_path / "e", opts)
    assert main(["verify-export", str(tmp_path / "e")]) == 1
    captured = capsys.readouterr()
    assert "skipped" in captured.out and "no bf16 Gemm/MatMul" in captured.out
    assert "could be verified" in captured.err
