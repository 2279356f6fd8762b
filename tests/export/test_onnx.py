"""ONNX graphs against the PyTorch reference in onnxruntime, per variant, at two history lengths."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from omniforcing_rt.export.exporter import export_engine
from omniforcing_rt.export.graphs import GRAPH_NAMES
from omniforcing_rt.export.manifest import ExportManifest
from omniforcing_rt.export.options import ExportOptions
from omniforcing_rt.export.verify import verify_export
from tests.helpers.tiny_model import tiny_model

from omniforcing_rt.models import write_model_dir

from .conftest import GRAPHS


def _assert_all_ok(rows, graphs):
    assert {r.graph for r in rows} >= set(graphs)
    bad = [r for r in rows if r.status != "ok"]
    assert not bad, bad
    assert {r.case for r in rows} == {0, 1}  # both history lengths ran


@pytest.mark.parametrize("graph", GRAPHS)
def test_onnx_variant_matches_pytorch(engine_dir, graph):
    rows = verify_export(engine_dir, (graph,))
    _assert_all_ok(rows, (graph,))
    assert all(r.backend == "onnxruntime" for r in rows)
    assert max(r.max_abs_diff for r in rows) < 1e-5


def test_graphs_are_opset_23_with_dynamic_history(engine_dir):
    m = ExportManifest.read(engine_dir)
    model = onnx.load(str(engine_dir / m.artefact("onnx", "refresh_block").path))
    assert model.opset_import[0].version == 23
    assert "Attention" in {n.op_type for n in model.graph.node}
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert isinstance(dims["video_slots"][0], str) and isinstance(dims["audio_slots"][0], str)  # history
    assert isinstance(dims["video_self_k"][1], str)  # pool pages
    assert dims["video_tokens"] == [1, 18, 8]  # fixed per variant
    outs = [o.name for o in model.graph.output]
    assert outs == m.graphs["refresh_block"]["outputs"] and outs[0] == "new_video_self_k"


def test_aoti_package_matches_pytorch(engine_dir):
    rows = verify_export(engine_dir, ("aoti",))
    _assert_all_ok(rows, ("aoti",))
    assert len(rows) == 2 * 10  # two cases x every output of the full pass


@pytest.mark.slow
def test_every_variant_of_a_model_with_sinks_in_the_paper_layout(tmp_path: Path):
    root = tmp_path / "m"
    write_model_dir(root, tiny_model(seed=5, audio_sink_tokens=2),
                    {"latent_grid_hw": [2, 2], "text_tokens": 8, "layout": "paper", "audio_sink_tokens": 2})  # fmt: skip
    out = tmp_path / "e"
    m = export_engine(root, out, ExportOptions(formats=("onnx",), page_size_tokens=8, progress=False))
    assert set(m.graphs) == set(GRAPH_NAMES) and m.graphs["denoise_block0"]["sink_tokens"] == 2
    _assert_all_ok(verify_export(out), GRAPH_NAMES)
