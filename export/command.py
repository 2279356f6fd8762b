"""``omniforcing-rt export`` and ``omniforcing-rt verify-export``: argument parsing and exits.

``cli.py`` only registers these two subcommands; everything they do lives here, so the export
package can change its flags without touching the main CLI.

Exit codes: 0 success; 1 ``verify-export`` found an output beyond tolerance or a backend that
could not run an artefact; 2 an :class:`~omniforcing_rt.errors.OfrtError` (damaged directory,
hash or config mismatch, unsupported format) reported by ``cli.main``.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_export_parser", "add_verify_parser", "run_export", "run_verify"]


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``export``."""
    from omniforcing_rt.export.graphs import GRAPH_NAMES
    from omniforcing_rt.export.options import FORMATS, PRECISIONS

    e = sub.add_parser("export", help="write an engine directory (AOTInductor package, ONNX graphs, TensorRT engines)")
    e.add_argument(
        "model", help="model name, model directory, training checkpoint (.pt) or bare transformer checkpoint"
    )
    e.add_argument("--format", dest="formats", nargs="+", choices=FORMATS, default=["aoti", "onnx"],
                   help="formats to write (default: aoti onnx; trt implies onnx and needs TensorRT + CUDA)")  # fmt: skip
    e.add_argument("--precision", choices=PRECISIONS, default="fp32", help="weight precision (fp8: e4m3 attention/FFN)")
    e.add_argument("--fp8-mode", choices=("scaled", "cast"), default="scaled",
                   help="fp8 layout: per-channel scales, or the release's plain cast (see export/fp8.py)")  # fmt: skip
    e.add_argument("--fp8-activations", default="bfloat16", choices=("bfloat16", "float32", "float16"),
                   help="activation dtype of an fp8 export")  # fmt: skip
    e.add_argument("--out", required=True, help="engine directory to write")
    e.add_argument("--device", default="cpu", help="cpu or cuda")
    e.add_argument("--page-size", type=int, default=64, help="KV page size in tokens")
    e.add_argument("--opset", type=int, default=23, help="ONNX opset (>= 23)")
    e.add_argument("--graphs", nargs="+", choices=GRAPH_NAMES, default=None, help="ONNX/TRT graphs (default: all)")
    e.add_argument("--latent-grid-hw", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="stream geometry (required for a bare checkpoint; default: the model's)")  # fmt: skip
    e.add_argument("--text-tokens", type=int, default=1024, help="text length of a bare checkpoint")
    e.add_argument("--use-ema", action="store_true", help="training checkpoints: export generator_ema")
    e.add_argument("--overwrite", action="store_true", help="replace an existing directory")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(fn=run_export)


def add_verify_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``verify-export``."""
    v = sub.add_parser(
        "verify-export", help="compare an engine directory's artefacts with PyTorch; exit 1 beyond tolerance"
    )
    v.add_argument("dir", help="engine directory written by 'export'")
    v.add_argument("--graphs", nargs="+", default=None, help="graphs to check ('aoti' for the package; default: all)")
    v.add_argument("--json", default=None, help="also write the rows to this JSON file")
    v.set_defaults(fn=run_verify)


def run_export(args: argparse.Namespace) -> int:
    """Export, then print the manifest's summary."""
    from omniforcing_rt.export.exporter import export_engine
    from omniforcing_rt.export.options import ExportOptions
    from omniforcing_rt.export.source import SourceOptions

    from omniforcing_rt.engine_config import EngineConfig

    opts = ExportOptions(
        formats=tuple(args.formats), precision=args.precision, fp8_mode=args.fp8_mode,
        fp8_activation_dtype=args.fp8_activations, device=args.device, page_size_tokens=args.page_size,
        opset=args.opset, graphs=tuple(args.graphs) if args.graphs else None, progress=not args.quiet,
        overwrite=args.overwrite,
    )  # fmt: skip
    grid = tuple(args.latent_grid_hw) if args.latent_grid_hw else None
    src = SourceOptions(use_ema=args.use_ema, latent_grid_hw=grid, text_tokens=args.text_tokens)
    base = EngineConfig(latent_grid_hw=grid) if grid else None
    m = export_engine(args.model, args.out, opts, config=base, source_options=src)
    sys.stdout.write(f"exported {m.extra.get('source')} to {args.out} (config_hash {m.config_hash}, "
                     f"precision {m.precision}, formats {', '.join(m.formats)}):\n")  # fmt: skip
    for a in m.artefacts:
        sys.stdout.write(f"  {a.path:<48} {a.bytes:>12,d} bytes  {a.kind}\n")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """Verify, print the table; 1 if any row failed or errored."""
    from omniforcing_rt.export.verify import format_rows, verify_export

    rows = verify_export(args.dir, tuple(args.graphs) if args.graphs else None)
    sys.stdout.write(format_rows(rows) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([r.__dict__ for r in rows], f, indent=1)
    bad = [r for r in rows if r.status in ("FAIL", "ERROR")]
    if not any(r.status == "ok" for r in rows):
        sys.stderr.write("nothing in this directory could be verified here\n")
        return 1
    if bad:
        sys.stderr.write(f"{len(bad)} of {len(rows)} rows beyond tolerance or not runnable\n")
        return 1
    return 0
