"""fp8 weight quantization: layouts, survival of dtype casts, and the measured cost against bf16."""

from __future__ import annotations

import pytest
import torch
from omniforcing_rt.export.fp8 import Fp8Linear, measure_fp8_error, nmse_and_cosine, quantize_fp8
from tests.helpers.tiny_model import tiny_model

from omniforcing_rt.model.weights import FP8_DTYPE

# Measured on the tiny model (seed 0), denoise + refresh passes of a standard block, bf16 reference:
# scaled nmse 2.6e-4 / cosine 0.99987, cast nmse 4.3e-4 / cosine 0.99978. Bounds leave ~4x room.
NMSE_MAX = {"scaled": 1e-3, "cast": 2e-3}
COSINE_MIN = {"scaled": 0.9995, "cast": 0.999}


def test_cast_layout_matches_the_release_fp8_checkpoint():
    m = tiny_model()
    n = quantize_fp8(m, "cast")
    fp8 = {name for name, p in m.named_parameters() if p.dtype == FP8_DTYPE}
    assert n == 2 * (6 * 4 + 2)  # per layer: 6 attentions x q/k/v/out + the video FFN's two linears
    assert "transformer_blocks.0.ff.net.0.proj.weight" in fp8 and "transformer_blocks.0.ff.net.0.proj.bias" in fp8
    assert not any("audio_ff" in k for k in fp8)  # the official map misses audio_ff
    assert not any(k.startswith(("adaln", "proj_out", "patchify")) or "norm" in k for k in fp8)


def test_scaled_layout_quantizes_both_ffns_and_keeps_biases():
    m = tiny_model()
    assert quantize_fp8(m, "scaled") == 2 * (6 * 4 + 4)
    lin = m.transformer_blocks[0].audio_ff.net[0].proj
    assert isinstance(lin, Fp8Linear) and lin.weight.dtype == FP8_DTYPE and lin.bias.dtype == torch.float32
    assert lin.weight_scale.shape == (lin.out_features, 1)


def test_fp8_weights_survive_module_casts():
    m = tiny_model()
    quantize_fp8(m, "scaled")
    m.to(torch.bfloat16)
    lin = m.transformer_blocks[1].attn1.to_q
    assert lin.weight.dtype == FP8_DTYPE and lin.bias.dtype == torch.bfloat16


def test_fp8_linear_is_close_to_the_linear_it_quantizes():
    lin = torch.nn.Linear(64, 32)
    q = Fp8Linear.from_linear(lin)
    x = torch.randn(5, 64)
    nmse, cos = nmse_and_cosine(q(x), lin(x))
    assert nmse < 1e-3 and cos > 0.9995  # e4m3 keeps 3 mantissa bits: ~2^-4 relative per weight


@pytest.mark.parametrize("mode", ["scaled", "cast"])
def test_fp8_accuracy_cost_against_bf16(mode):
    report = measure_fp8_error(tiny_model(), mode)
    assert report.nmse < NMSE_MAX[mode] and report.cosine > COSINE_MIN[mode], report
    assert report.quantized_linears > 0 and len(report.per_output) == 2 + 8


def test_nmse_and_cosine_of_known_vectors():
    ref = torch.tensor([1.0, 0.0, 0.0])
    assert nmse_and_cosine(ref, ref) == (0.0, pytest.approx(1.0))
    nmse, cos = nmse_and_cosine(torch.tensor([1.0, 1.0, 0.0]), ref)
    assert nmse == pytest.approx(1.0) and cos == pytest.approx(2**-0.5)


@pytest.mark.slow
def test_fp8_export_runs_in_onnxruntime_with_e4m3_initializers(tiny_dir, tmp_path):
    import onnx
    from omniforcing_rt.export.exporter import export_engine
    from omniforcing_rt.export.options import ExportOptions
    from omniforcing_rt.export.verify import verify_export

    opts = ExportOptions(formats=("onnx",), precision="fp8", fp8_activation_dtype="float32", page_size_tokens=16,
                         graphs=("refresh_block", "text_kv"), progress=False)  # fmt: skip
    m = export_engine(tiny_dir, tmp_path / "e", opts)
    graph = onnx.load(str(tmp_path / "e" / m.artefact("onnx", "refresh_block").path))
    assert onnx.TensorProto.FLOAT8E4M3FN in {i.data_type for i in graph.graph.initializer}  # weights stay e4m3
    rows = verify_export(tmp_path / "e")
    assert rows and all(r.status == "ok" for r in rows), rows
