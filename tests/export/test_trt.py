"""TensorRT: what is checkable without it (plugin launch glue with nvcc, the guard, profiles), and
the engine build where TensorRT and a GPU exist.

TensorRT cannot be installed on the CPU-only development machine (toolchain.md pitfall 7): the
build tests skip there with that reason. Build and run recipe: export/README.md.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from omniforcing_rt.export.trt_build import TrtBuildOptions, profile_shapes

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "export" / "plugins"
KERNELS = ROOT / "kernels" / "cuda"
NVCC = shutil.which("nvcc")
HAS_TRT = importlib.util.find_spec("tensorrt") is not None

needs_nvcc = pytest.mark.skipif(
    NVCC is None, reason="nvcc is not on PATH, so the plugin's CUDA glue cannot be compile-checked"
)
needs_trt = pytest.mark.skipif(
    not HAS_TRT or not torch.cuda.is_available(),
    reason="TensorRT is not importable (it cannot be installed on the CPU-only machine) or there is no CUDA device",
)


@needs_nvcc
def test_plugin_launch_glue_compiles_with_nvcc(tmp_path):
    cmd = [NVCC, "-std=c++17", "-arch=sm_90", f"-I{KERNELS}", f"-I{PLUGINS}", "-c",
           str(PLUGINS / "paged_attention_launch.cu"), "-o", str(tmp_path / "glue.o")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "glue.o").stat().st_size > 0


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not on PATH")
def test_plugin_source_is_empty_without_tensorrt(tmp_path):
    # The default build never sees TensorRT: without OFRT_ENABLE_TENSORRT (or without NvInfer
    # headers) the plugin translation unit preprocesses to nothing.
    proc = subprocess.run(["g++", "-std=c++17", "-E", "-P", str(PLUGINS / "paged_attention_plugin.cpp")],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_profiles_cover_history_pages_and_text_only():
    dims = {"video_tokens": [1, 18, 8], "video_slots": ["video_history"], "audio_slots": ["audio_history"],
            "video_self_k": [2, "video_pages", 16, 16], "text_video_k": [2, "text_tokens", 16]}  # fmt: skip
    prof = profile_shapes("refresh_block", dims, TrtBuildOptions(max_history_tokens=4096, max_pool_pages=128))
    assert "video_tokens" not in prof  # static dims need no profile
    assert prof["video_slots"] == ((0,), (1024,), (4096,))
    assert prof["video_self_k"] == ((2, 1, 16, 16), (2, 64, 16, 16), (2, 128, 16, 16))
    assert prof["text_video_k"][2] == (2, 1024, 16)


@needs_trt
def test_trt_engines_build_and_match_pytorch(tiny_dir, tmp_path):
    from omniforcing_rt.export.exporter import export_engine
    from omniforcing_rt.export.options import ExportOptions
    from omniforcing_rt.export.verify import verify_export

    opts = ExportOptions(formats=("onnx", "trt"), device="cuda", page_size_tokens=16, graphs=("refresh_block",),
                         progress=False)  # fmt: skip
    m = export_engine(tiny_dir, tmp_path / "e", opts)
    assert m.artefact("trt-engine", "refresh_block") is not None
    rows = [r for r in verify_export(tmp_path / "e") if r.backend == "tensorrt"]
    assert rows and all(r.status == "ok" for r in rows), rows
