"""GPU compile checks that need no GPU: Triton AOT to sm_90a, nvcc for the CUDA sources.

Nothing here executes GPU code. The Triton compile runs in a subprocess without
``TRITON_INTERPRET`` (in this process the kernels are interpreter objects); the CUDA library is
loaded with ctypes and only its host-side argument validation is exercised.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from omniforcing_rt.kernels.cuda import launch
from omniforcing_rt.kernels.triton.aot import AOT_SPECS

CUDA_DIR = Path(launch.__file__).resolve().parent
NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(
    NVCC is None, reason="nvcc is not on PATH, so the CUDA sources cannot be compile-checked"
)
CUDA_INVALID_VALUE, CUDA_NOT_SUPPORTED = 1, 801

_AOT_SCRIPT = r"""
import json, sys
from concurrent.futures import ProcessPoolExecutor
from omniforcing_rt.kernels.triton.aot import AOT_SPECS, compile_spec

def one(i):
    spec = AOT_SPECS[i]
    try:
        ck = compile_spec(spec)
    except Exception as e:  # report, do not crash the pool
        return {"name": spec.name, "error": repr(e)[:3000]}
    ptx = ck.asm["ptx"]
    return {"name": spec.name, "cubin_bytes": len(ck.asm["cubin"]), "wgmma": "wgmma" in ptx,
            "mma": "mma" in ptx, "target": ".target sm_90a" in ptx, "shared": ck.metadata.shared}

if __name__ == "__main__":
    with ProcessPoolExecutor(2) as pool:
        print(json.dumps(list(pool.map(one, range(len(AOT_SPECS))))))
"""


@pytest.fixture(scope="module")
def aot_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:  # type: ignore[type-arg]
    script = tmp_path_factory.mktemp("aot") / "aot_compile.py"
    script.write_text(_AOT_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {r["name"]: r for r in json.loads(proc.stdout.strip().splitlines()[-1])}


@pytest.mark.parametrize("spec", AOT_SPECS, ids=lambda s: s.name)
def test_triton_aot_compiles_for_sm90a(spec, aot_results) -> None:  # type: ignore[no-untyped-def]
    result = aot_results[spec.name]
    assert "error" not in result, result.get("error")
    assert result["cubin_bytes"] > 0 and result["target"]
    if spec.expect_mma:  # attention must run on tensor cores (wgmma on Hopper)
        assert result["wgmma"], f"{spec.name}: no wgmma in the sm_90a PTX"


def _nvcc(args: list[str]) -> dict[str, object]:
    assert NVCC is not None
    proc = subprocess.run([NVCC, *args], capture_output=True, text=True, timeout=600)
    return {"returncode": proc.returncode, "stderr": proc.stderr}


def _nvcc_key(common: list[str]) -> str:
    """Sources, headers, flags and nvcc version: what the compile results depend on."""
    h = hashlib.sha256(" ".join(common).encode())
    h.update(subprocess.run([NVCC or "nvcc", "--version"], capture_output=True, text=True).stdout.encode())
    for name in (*launch.SOURCES, *launch.HEADERS):
        h.update((CUDA_DIR / name).read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def nvcc_outputs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Compile every .cu to an object (keeping the PTX) and to a cubin, then link the .so.

    Successful results are kept in the pytest cache under a hash of the sources, flags and nvcc
    version (like Triton's own kernel cache), so a re-run with unchanged sources costs nothing;
    any edit to kernels/cuda recompiles.
    """
    if NVCC is None:
        pytest.skip("nvcc is not on PATH")
    common = ["-arch=sm_90a", "-std=c++17", "-O3", "-Xcompiler", "-fPIC,-Wall"]
    name = f"ofrt_nvcc_{_nvcc_key(common)}"
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    out = Path(cache.mkdir(name)) if cache is not None else tmp_path_factory.mktemp(name)
    record = out / "results.json"
    if record.exists():
        return {"dir": out, "results": json.loads(record.read_text())}
    jobs = {}
    for src in launch.SOURCES:
        stem = Path(src).stem
        keep = ["--keep", f"--keep-dir={out}"]
        jobs[f"{stem}.o"] = [*common, "-c", *keep, str(CUDA_DIR / src), "-o", str(out / f"{stem}.o")]
        jobs[f"{stem}.cubin"] = [*common, "--cubin", str(CUDA_DIR / src), "-o", str(out / f"{stem}.cubin")]
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(jobs, pool.map(_nvcc, jobs.values())))
    objects = [str(out / f"{Path(s).stem}.o") for s in launch.SOURCES]
    lib = ["-arch=sm_90a", "-shared", "-cudart", "static", *objects, "-o", str(out / "libofrt_kernels.so")]
    results["lib"] = _nvcc(lib)
    if all(r["returncode"] == 0 for r in results.values()):
        record.write_text(json.dumps(results))
    return {"dir": out, "results": results}


@needs_nvcc
@pytest.mark.parametrize("kind", ["o", "cubin"])
@pytest.mark.parametrize("src", launch.SOURCES)
def test_nvcc_compiles_sm90a(src: str, kind: str, nvcc_outputs) -> None:  # type: ignore[no-untyped-def]
    proc = nvcc_outputs["results"][f"{Path(src).stem}.{kind}"]
    assert proc["returncode"] == 0, proc["stderr"][-4000:]
    assert "warning" not in proc["stderr"].lower(), proc["stderr"][-4000:]
    assert (nvcc_outputs["dir"] / f"{Path(src).stem}.{kind}").stat().st_size > 0


@needs_nvcc
def test_cuda_attention_uses_tensor_cores(nvcc_outputs) -> None:  # type: ignore[no-untyped-def]
    ptx = "\n".join(p.read_text() for p in nvcc_outputs["dir"].glob("block_causal_attention*.ptx"))
    assert "wmma.mma.sync" in ptx or "mma.sync" in ptx


@needs_nvcc
def test_cuda_library_loads_and_validates_arguments(nvcc_outputs) -> None:  # type: ignore[no-untyped-def]
    """Load the .so with ctypes (no driver here) and check the launchers' host-side contract:
    bad arguments are refused before any CUDA call; a valid call reports the missing driver
    as an error code instead of crashing."""
    proc = nvcc_outputs["results"]["lib"]
    assert proc["returncode"] == 0, proc["stderr"][-4000:]
    lib = ctypes.CDLL(str(nvcc_outputs["dir"] / "libofrt_kernels.so"))
    for fn, mirror in (("ofrt_paged_attention_params_size", launch.PagedAttentionParams),
                       ("ofrt_paged_kv_append_params_size", launch.PagedKvAppendParams)):  # fmt: skip
        getattr(lib, fn).restype = ctypes.c_size_t
        assert getattr(lib, fn)() == ctypes.sizeof(mirror), f"{mirror.__name__} layout differs from the C struct"
    attn, append = lib.ofrt_block_causal_attention_paged, lib.ofrt_paged_kv_append
    assert attn(None, None) == CUDA_INVALID_VALUE and append(None, None) == CUDA_INVALID_VALUE

    buf = ctypes.create_string_buffer(4096)
    ptr = (ctypes.addressof(buf) + 15) // 16 * 16
    p = launch.PagedAttentionParams(batch=1, q_heads=2, kv_heads=1, head_dim=128, page_size=16, max_seqlen_q=4,
                                    sm_scale=0.088, dtype=1)  # fmt: skip
    for name in ("q", "k_new", "v_new", "k_cache", "v_cache", "out", "page_table", "cu_seqlens_q",
                 "cu_seqlens_kv", "cache_lens"):  # fmt: skip
        setattr(p, name, ptr)
    p.head_dim = 96
    assert attn(ctypes.byref(p), None) == CUDA_NOT_SUPPORTED
    p.head_dim, p.dtype = 128, 2  # fp32
    assert attn(ctypes.byref(p), None) == CUDA_NOT_SUPPORTED
    p.dtype, p.q_heads, p.kv_heads = 1, 3, 2  # 3 query heads cannot share 2 kv heads
    assert attn(ctypes.byref(p), None) == CUDA_INVALID_VALUE
    p.q_heads, p.kv_heads, p.q_stride_token = 2, 1, 12  # rows not 16-byte aligned
    assert attn(ctypes.byref(p), None) == CUDA_INVALID_VALUE
    p.q_stride_token = 256
    assert attn(ctypes.byref(p), None) not in (0, CUDA_INVALID_VALUE, CUDA_NOT_SUPPORTED)  # no driver here
    a = launch.PagedKvAppendParams(batch=1, max_seqlen=4, page_size=0, row_bytes=256)
    assert append(ctypes.byref(a), None) == CUDA_INVALID_VALUE
