"""check-fixture: official parity on the shared fixture, generality on synthetic fixtures of other
configurations, and the failure contract (table, worst line, exit codes)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tests.helpers.synthetic_fixture import write_fixture

from omniforcing_rt.checks.report import FIXTURE_TOLERANCE
from omniforcing_rt.checks.transformer_fixture import check_transformer_fixture
from omniforcing_rt.cli import main
from omniforcing_rt.model.config import ModelConfig

FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "ltx2_tiny_reference"
needs_fixture = pytest.mark.skipif(not FIXTURE.exists(), reason=f"shared fixture not found at {FIXTURE}")


@needs_fixture
def test_official_fixture_passes_every_group(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-fixture", str(FIXTURE)]) == 0
    out = capsys.readouterr().out
    assert "not covered" not in out and "FAIL" not in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("worst: ")
    assert float(last.split()[-1]) <= FIXTURE_TOLERANCE
    compared = {
        line.split(".")[0] for line in out.splitlines() if line.rstrip().endswith(" ok") and "." in line.split()[0]
    }
    assert compared == {"bidir", "masked", "trace", "causal", "step"}


@needs_fixture
def test_perturbed_reference_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "fx"
    shutil.copytree(FIXTURE, d)
    io = load_file(str(d / "io.safetensors"))
    io["trace.12.audio_x0"] = io["trace.12.audio_x0"] + 1e-3
    save_file(io, str(d / "io.safetensors"))
    assert main(["check-fixture", str(d)]) == 1
    out = capsys.readouterr().out
    assert "trace.12.audio_x0" in out.split("worst:")[-1]


def test_not_a_fixture_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-fixture", str(tmp_path)]) == 2
    assert "not a fixture" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("paper", "sinks", "grid", "text_len", "blocks"),
    [(False, 0, (3, 5), 5, 3), (True, 4, (2, 3), 7, 3)],
    ids=["release-3x5", "paper-sinks"],
)
def test_synthetic_fixture_of_another_configuration(
    tmp_path: Path, paper: bool, sinks: int, grid: tuple[int, int], text_len: int, blocks: int
) -> None:
    cfg = ModelConfig(
        num_layers=3, num_attention_heads=3, attention_head_dim=8, in_channels=6, out_channels=6,
        cross_attention_dim=24, caption_channels=10, audio_num_attention_heads=2, audio_attention_head_dim=6,
        audio_in_channels=5, audio_out_channels=5, audio_cross_attention_dim=12, audio_sink_tokens=sinks,
    )  # fmt: skip
    root = write_fixture(tmp_path / "fx", cfg, grid_hw=grid, paper=paper, blocks=blocks, text_len=text_len)
    rows = check_transformer_fixture(root)
    bad = [r for r in rows if r.status in ("FAIL", "not covered")]
    assert not bad, bad[:5]
    groups = {r.key.split(".")[0] for r in rows if r.diff is not None}
    assert {"bidir", "masked", "trace", "causal", "step"} <= groups
    if sinks:
        io = load_file(str(root / "io.safetensors"))
        n_audio = io["masked.audio_in"].shape[1]
        assert io["masked.mask.audio_self"].shape == (n_audio + sinks, n_audio + sinks)
        assert torch.equal(io["masked.pe.audio_cos"][0, :sinks], torch.ones_like(io["masked.pe.audio_cos"][0, :sinks]))


@needs_fixture
def test_official_fixture_with_kernel_attention() -> None:
    rows = check_transformer_fixture(FIXTURE, attention_backend="ofrt")
    assert not [r for r in rows if r.status in ("FAIL", "not covered")]
    assert sum(r.diff is not None for r in rows) == 143
