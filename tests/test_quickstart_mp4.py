"""The README quickstart: ``generate ... --seconds 5 --out clip.mp4`` on the embedded default model."""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path

import pytest
from safetensors.torch import load_file

from omniforcing_rt.cli import main

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quickstart")
    argv = [
        "generate", "a red ball bounces on a wooden floor", "--seconds", "5", "--out", str(out / "quickstart.mp4"),
        "--wav", str(out / "quickstart.wav"), "--fragments", str(out / "frags"), "--latents", "--report", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    return out


def test_mp4_streams(quickstart: Path) -> None:
    with av.open(str(quickstart / "quickstart.mp4")) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.name, a.codec_context.name) == ("h264", "aac")
        assert (v.average_rate, v.width, v.height) == (24, 192, 128)
        assert (a.sample_rate, a.channels) == (24000, 2)
        assert c.duration / 1e6 == pytest.approx(121 / 24, abs=0.05)
        assert sum(1 for _ in c.decode(video=0)) == 121
    with av.open(str(quickstart / "quickstart.mp4")) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
    assert 120_240 <= samples <= 120_240 + 2048  # AAC pads to whole 1024-sample frames (toolchain pitfall 13)


def test_report_and_side_outputs(quickstart: Path) -> None:
    report = json.loads((quickstart / "quickstart.report.json").read_text())
    blocks = report["blocks"]
    assert [b["block"] for b in blocks] == list(range(5)) and report["text_encoder"] == "hashed stand-in"
    for k, b in enumerate(blocks):
        assert (b["video_frame_start"], b["audio_sample_start"]) == (
            (0, 0) if k == 0 else (25 + 24 * (k - 1), 24240 + 24000 * (k - 1))
        )
        assert b["video_pts_s"] == b["video_frame_start"] / 24 and b["audio_pts_s"] == b["audio_sample_start"] / 24000
        assert b["kv_cache_bytes"] > 0 and len(b["passes"]) == 5 and b["generate_s"] > 0
        assert b["decode"]["block"] == k and b["decode"]["decode_video_s"] > 0 and b["decode"]["decode_audio_s"] > 0
        assert b["media_ready_s"] >= b["ready_s"]
    assert 0 < report["overlap_s"] <= blocks[-1]["ready_s"]  # generation of blocks 1.. ran during decoding
    assert report["final_flush"]["block"] == -1 and report["ttfc_media_s"] > report["ttfc_s"]
    assert report["video_decode"] == {"left_context_latents": 3, "lookahead_latents": 3}
    assert report["outputs"]["frames"] == 121 and report["outputs"]["samples"] == 120_240
    with wave.open(str(quickstart / "quickstart.wav")) as w:
        assert (w.getnframes(), w.getnchannels(), w.getframerate()) == (120_240, 2, 24000)
    lat = load_file(str(quickstart / "quickstart.latents.safetensors"))
    assert lat["video"].shape == (16, 128, 4, 6) and lat["audio"].shape == (126, 128)


def test_fragments_one_per_block(quickstart: Path) -> None:
    frags = quickstart / "frags"
    names = sorted(p.name for p in frags.iterdir())
    assert names == [
        "frag_00000.m4s",
        "frag_00001.m4s",
        "frag_00002.m4s",
        "frag_00003.m4s",
        "frag_00004.m4s",
        "init.mp4",
    ]
    parts = [(frags / n).read_bytes() for n in names[:-1]]
    assert all(len(p) > 1000 and p[4:8] == b"moof" for p in parts)
    data = (frags / "init.mp4").read_bytes() + b"".join(parts)
    with av.open(io.BytesIO(data)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 121


def test_mp4_needs_a_model_with_media(tmp_path: Path, capsys) -> None:
    assert main(["generate", "--seconds", "5", "--out", str(tmp_path), "--wav", str(tmp_path / "a.wav")]) == 2
    assert "need an .mp4 --out" in capsys.readouterr().err
