"""Kernel micro-benchmarks: our kernels vs SDPA with a dense mask and FlexAttention.

Usage:
    python benchmarks/bench_kernels.py --routine block_causal_attention --impl triton sdpa flex --refcheck
    python benchmarks/bench_kernels.py --routine paged_kv_append --impl triton cuda torch --refcheck
    python benchmarks/bench_kernels.py --routine rope_av --impl triton torch --refcheck

Geometry is the real LTX-2 one (spec B.1, C.2; ``--geometry``), bf16 by default. Each impl is
warmed up (compile and autotune excluded), then timed ``--repeats`` times; the table gives
median / p90 / std in ms, and TFLOP/s (attention: 4 * Sq * Sk * D * H) or GB/s (data movement)
with the fraction of the H100 dense BF16 peak (989.4 TFLOP/s) or HBM3 bandwidth (3.35 TB/s).

On a machine without a GPU the Triton and CUDA kernels are **not timed** (the interpreter's
speed says nothing about a GPU); the reference, SDPA and FlexAttention baselines are timed on the
CPU honestly, and the table says so. ``--refcheck`` compares every impl's output with the fp64
reference under the registry tolerance.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from omniforcing_rt.kernels.registry import get_op  # noqa: E402

from timing import Timing, bench, environment  # noqa: E402

H100_BF16_TFLOPS = 989.4
H100_HBM_TBPS = 3.35
GPU_IMPLS = ("triton", "cuda")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

# q tokens, own-block keys, history keys, heads, head dim (spec B.1, C.2, performance-budget 1.1)
GEOMETRY = {
    "video_self": (1152, 1152, 6144, 32, 128),
    "video_self_block0": (1536, 1536, 0, 32, 128),
    "audio_self": (25, 25, 101, 32, 64),
    "a2v": (1152, 25, 101, 32, 64),
    "v2a": (25, 1152, 6144, 32, 64),
}
ROUTINE_IMPLS = {
    "block_causal_attention": ("triton", "cuda", "sdpa", "flex", "reference"),
    "paged_kv_append": ("triton", "cuda", "torch", "reference"),
    "rope_av": ("triton", "torch", "reference"),
}


@dataclass
class Row:
    """One line of the result table."""

    impl: str
    timing: Timing | None = None
    work: float = 0.0  # FLOPs (attention) or bytes (data movement) per call
    max_diff: float | None = None
    ref_ok: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Problem:
    """A prepared routine: callables per impl plus how to score them."""

    calls: dict[str, Callable[[], torch.Tensor]]
    reference: Callable[[], torch.Tensor]
    work: float
    unit: str  # "flop" or "byte"
    op: str
    reset: Callable[[], None] = lambda: None  # restores in-place outputs before a refcheck call


def _paged_inputs(geom: str, heads: int, dtype: torch.dtype, page_size: int, device: str) -> dict[str, Any]:
    sq, own, hist, _, d = GEOMETRY[geom]
    n_pages = max(1, -(-hist // page_size))
    perm = torch.randperm(n_pages + 4, device=device)[:n_pages].to(torch.int32)
    t = {
        "q": torch.randn(sq, heads, d, device=device, dtype=dtype),
        "k_new": torch.randn(own, heads, d, device=device, dtype=dtype),
        "v_new": torch.randn(own, heads, d, device=device, dtype=dtype),
        "cu_q": torch.tensor([0, sq], dtype=torch.int32, device=device),
        "cu_kv": torch.tensor([0, own], dtype=torch.int32, device=device),
        "k_cache": torch.randn(n_pages + 4, page_size, heads, d, device=device, dtype=dtype),
        "v_cache": torch.randn(n_pages + 4, page_size, heads, d, device=device, dtype=dtype),
        "page_table": perm[None],
        "cache_lens": torch.tensor([hist], dtype=torch.int32, device=device),
    }
    flat = lambda c: c[perm.long()].reshape(-1, heads, d)[:hist]  # noqa: E731
    t["k_dense"] = torch.cat([flat(t["k_cache"]), t["k_new"]])  # gathered once, outside the timing
    t["v_dense"] = torch.cat([flat(t["v_cache"]), t["v_new"]])
    # Block ids as the v2 release builds its masks: history blocks < current block.
    t["q_ids"] = torch.full((sq,), 1 << 20, dtype=torch.int32, device=device)
    t["k_ids"] = torch.cat([torch.arange(hist, device=device, dtype=torch.int32) // 1152,
                            torch.full((own,), 1 << 20, dtype=torch.int32, device=device)])  # fmt: skip
    return t


def _flex_call(t: dict[str, Any], device: str) -> Callable[[], torch.Tensor]:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    qb, kb = t["q_ids"], t["k_ids"]
    mask = create_block_mask(lambda b, h, qi, ki: kb[ki] <= qb[qi], None, None, len(qb), len(kb), device=device)
    flex = torch.compile(flex_attention, dynamic=False)
    q, k, v = (x.transpose(0, 1)[None] for x in (t["q"], t["k_dense"], t["v_dense"]))
    return lambda: flex(q, k, v, block_mask=mask)[0].transpose(0, 1)


def attention_problem(args: argparse.Namespace, device: str) -> Problem:
    sq, own, hist, heads, d = GEOMETRY[args.geometry]
    heads = args.heads or heads
    t = _paged_inputs(args.geometry, heads, DTYPES[args.dtype], args.page_size, device)
    paged = (t["q"], t["k_new"], t["v_new"], t["cu_q"], t["cu_kv"], t["k_cache"], t["v_cache"], t["page_table"],
             t["cache_lens"])  # fmt: skip
    op = get_op("block_causal_attention")
    mask = t["k_ids"][None, :] <= t["q_ids"][:, None]  # dense [Sq, Sk] bool, as the v2 release
    q, k, v = (x.transpose(0, 1)[None] for x in (t["q"], t["k_dense"], t["v_dense"]))
    calls: dict[str, Callable[[], torch.Tensor]] = {
        "sdpa": lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)[0].transpose(0, 1),
        "reference": lambda: op.impl("reference")(*paged, max_seqlen_q=sq),
    }
    for impl in GPU_IMPLS:
        calls[impl] = lambda impl=impl: op.impl(impl)(*paged, max_seqlen_q=sq)
    if "flex" in args.impl:
        calls["flex"] = _flex_call(t, device)
    return Problem(calls, calls["reference"], 4.0 * sq * (hist + own) * d * heads, "flop", "block_causal_attention")


def append_problem(args: argparse.Namespace, device: str) -> Problem:
    sq, _, hist, heads, d = GEOMETRY[args.geometry]
    heads = args.heads or heads
    t = _paged_inputs(args.geometry, heads, DTYPES[args.dtype], args.page_size, device)
    n_pages = -(-(hist + sq) // args.page_size)
    pool = n_pages + 4
    k_cache = torch.zeros(pool, args.page_size, heads, d, device=device, dtype=t["q"].dtype)
    v_cache = torch.zeros_like(k_cache)
    pt = torch.randperm(pool, device=device)[:n_pages].to(torch.int32)[None]
    start = torch.tensor([hist], dtype=torch.int32, device=device)
    kn, vn = t["q"], torch.randn_like(t["q"])
    pos = hist + torch.arange(sq, device=device)
    flat_idx = pt[0].long()[pos // args.page_size] * args.page_size + pos % args.page_size  # precomputed

    def torch_append() -> torch.Tensor:
        k_cache.view(-1, heads, d)[flat_idx] = kn
        v_cache.view(-1, heads, d)[flat_idx] = vn
        return k_cache

    def impl_call(impl: str) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            get_op("paged_kv_append").impl(impl)(kn, vn, t["cu_q"], k_cache, v_cache, pt, start, max_seqlen=sq)
            return k_cache

        return run

    def reset() -> None:  # a refcheck must see only what the checked impl wrote
        k_cache.zero_()
        v_cache.zero_()

    calls = {"torch": torch_append, **{i: impl_call(i) for i in (*GPU_IMPLS, "reference")}}
    return Problem(calls, calls["reference"], 4.0 * kn.numel() * kn.element_size(), "byte", "paged_kv_append",
                   reset)  # fmt: skip


def rope_problem(args: argparse.Namespace, device: str) -> Problem:
    sq, _, _, heads, d = GEOMETRY[args.geometry]
    heads = args.heads or heads
    dtype = DTYPES[args.dtype]
    x = torch.randn(sq, heads, d, device=device, dtype=dtype)
    ang = torch.rand(sq, heads, d // 2, device=device, dtype=torch.float64) * 100
    cos, sin = torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)
    op = get_op("rope_av")

    def torch_split() -> torch.Tensor:  # ltx-core apply_split_rotary_emb in the activation dtype
        a, b = x[..., : d // 2], x[..., d // 2 :]
        return torch.cat((a * cos - b * sin, b * cos + a * sin), dim=-1)

    calls = {"torch": torch_split}
    for impl in (*GPU_IMPLS, "reference"):
        if impl in op.impls:
            calls[impl] = lambda impl=impl: op.impl(impl)(x, cos, sin, interleaved=False)
    work = 2.0 * x.numel() * x.element_size() + 2.0 * cos.numel() * cos.element_size()
    return Problem(calls, calls["reference"], work, "byte", "rope_av")


def measure(problem: Problem, impls: list[str], args: argparse.Namespace, device: str) -> list[Row]:
    problem.reset()
    expected = problem.reference().clone() if args.refcheck else None
    rows = []
    for impl in impls:
        if impl not in problem.calls:
            rows.append(Row(impl, note="no such implementation for this routine"))
            continue
        if impl in GPU_IMPLS and device != "cuda":
            rows.append(Row(impl, note="not timed: no CUDA device (GPU kernels are only timed on a GPU)"))
            continue
        row = Row(impl, work=problem.work)
        try:
            row.timing = bench(problem.calls[impl], device=device, warmup=args.warmup, repeats=args.repeats,
                               cold_l2=args.cold_l2)  # fmt: skip
        except Exception as e:  # report, keep benchmarking the other impls
            rows.append(Row(impl, note=f"failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}"))
            continue
        if expected is not None:
            problem.reset()
            got = problem.calls[impl]()
            tol = get_op(problem.op).tolerance(expected.dtype)
            row.max_diff = float((got.double() - expected.double()).abs().max())
            row.ref_ok = bool(torch.allclose(got.double(), expected.double(), atol=tol.atol, rtol=tol.rtol))
        rows.append(row)
    return rows


def _rate(row: Row, unit: str) -> tuple[str, str]:
    if row.timing is None:
        return "-", "-"
    per_s = row.work / (row.timing.median_ms * 1e-3)
    if unit == "flop":
        return f"{per_s / 1e12:.2f} TFLOP/s", f"{per_s / 1e12 / H100_BF16_TFLOPS:.1%} of BF16 peak"
    return f"{per_s / 1e9:.1f} GB/s", f"{per_s / 1e12 / H100_HBM_TBPS:.1%} of HBM3"


def report(rows: list[Row], problem: Problem, args: argparse.Namespace, device: str) -> None:
    print(f"\n## {args.routine} - geometry {args.geometry}, {args.dtype}, device {device}\n")
    print("| impl | median ms | p90 ms | std ms | rate | peak fraction* | max diff vs fp64 | refcheck | note |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        t = r.timing
        rate, frac = _rate(r, problem.unit)
        diff = "-" if r.max_diff is None else f"{r.max_diff:.2e}"
        ok = "-" if r.ref_ok is None else ("pass" if r.ref_ok else "FAIL")
        cells = [f"{t.median_ms:.3f}", f"{t.p90_ms:.3f}", f"{t.std_ms:.3f}"] if t else ["-", "-", "-"]
        print(f"| {r.impl} | {' | '.join(cells)} | {rate} | {frac} | {diff} | {ok} | {r.note} |")
    print("\n*H100 SXM dense BF16 989.4 TFLOP/s / HBM3 3.35 TB/s; meaningful only for GPU rows.")
    if device != "cuda":
        print("No CUDA device: the Triton and CUDA kernels were NOT timed; CPU rows time the baselines only.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--routine", required=True, choices=sorted(ROUTINE_IMPLS))
    p.add_argument("--impl", nargs="+", default=None, help="implementations (default: all for the routine)")
    p.add_argument("--geometry", default="video_self", choices=sorted(GEOMETRY))
    p.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    p.add_argument("--heads", type=int, default=None, help="override the head count (e.g. fewer on CPU)")
    p.add_argument("--page-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=None, help="timed calls (default 20 on GPU, 3 on CPU)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--refcheck", action="store_true", help="compare outputs with the fp64 reference")
    p.add_argument("--cold-l2", action="store_true", help="flush L2 before every timed call (GPU)")
    p.add_argument("--jsonl", type=Path, default=None, help="append one JSON line per row here")
    args = p.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    args.impl = args.impl or list(ROUTINE_IMPLS[args.routine])
    args.repeats = args.repeats or (20 if device == "cuda" else 3)
    torch.manual_seed(0)
    builders = {"block_causal_attention": attention_problem, "paged_kv_append": append_problem,
                "rope_av": rope_problem}  # fmt: skip
    problem = builders[args.routine](args, device)
    rows = measure(problem, args.impl, args, device)
    report(rows, problem, args, device)
    if args.jsonl:
        env = environment()
        with args.jsonl.open("a") as f:
            for r in rows:
                rec = {"routine": args.routine, "geometry": args.geometry, "dtype": args.dtype, "impl": r.impl,
                       "timing": r.timing.as_dict() if r.timing else None, "work": r.work, "unit": problem.unit,
                       "max_diff": r.max_diff, "refcheck": r.ref_ok, "note": r.note, "env": env}  # fmt: skip
                f.write(json.dumps(rec) + "\n")
    return 1 if any(r.ref_ok is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
