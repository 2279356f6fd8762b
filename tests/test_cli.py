"""The command line: generate on the embedded default model, its report, and error exits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

from omniforcing_rt.cli import main


def test_generate_rolling_report_is_flat(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    rc = main(["generate", "a dog barks twice", "--seconds", "8", "--window-seconds", "2", "--out", str(out), "--quiet"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    blocks = report["blocks"]
    assert [b["block"] for b in blocks] == list(range(8))
    sizes = [b["kv_cache_bytes"] for b in blocks]
    assert sizes[0] < sizes[1] < sizes[2]  # filling: block 0 + 2 history blocks
    assert len(set(sizes[2:])) == 1, sizes  # flat once the 2-block windows are full
    assert blocks[1]["video_pts_s"] == 25 / 24 and blocks[1]["audio_pts_s"] == 24240 / 24000
    assert all(len(b["passes"]) == 5 for b in blocks)
    lat = load_file(str(out / "latents.safetensors"))
    assert lat["video"].shape == (4 + 3 * 7, 128, 4, 6) and lat["audio"].shape == (26 + 25 * 7, 128)


def test_generate_with_the_engine_equals_the_reference(tmp_path: Path, monkeypatch) -> None:
    """``generate --engine`` streams through the compiled C++ engine: same latents (fp32, 1e-4)."""
    monkeypatch.setenv("OFRT_CACHE_DIR", str(tmp_path / "engines"))
    outs = {}
    for name, extra in (("ref", []), ("engine", ["--engine"])):
        out = tmp_path / name
        argv = ["generate", "a dog barks", "--seconds", "3.04", "--window-seconds", "1", "--out", str(out), "--quiet"]
        assert main([*argv, *extra]) == 0
        outs[name] = load_file(str(out / "latents.safetensors"))
        report = json.loads((out / "report.json").read_text())
        assert [len(b["passes"]) for b in report["blocks"]] == [5, 5, 5]
    for key in ("video", "audio"):
        assert (outs["ref"][key] - outs["engine"][key]).abs().max().item() <= 1e-4


def test_generate_rejects_invalid_duration(tmp_path: Path, capsys) -> None:
    assert main(["generate", "--seconds", "5.5", "--out", str(tmp_path)]) == 2
    assert "valid durations" in capsys.readouterr().err


def test_module_entry_point_and_info() -> None:
    res = subprocess.run([sys.executable, "-m", "omniforcing_rt", "info"], capture_output=True, text=True, check=True)
    info = json.loads(res.stdout)
    assert info["model"] == "default" and info["config"]["num_layers"] == 2 and info["parameters"] > 0
