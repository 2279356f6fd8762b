"""Block-by-block container output: MP4 streams, WAV length, one fMP4 fragment per block."""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import pytest
import torch

from omniforcing_rt.errors import InputError
from omniforcing_rt.media.av_output import AvWriter, split_boxes
from omniforcing_rt.media.decode_worker import DecodeTiming, MediaBlock

av = pytest.importorskip("av")

SIZES = [(25, 24240), (24, 24000), (24, 24000), (24, 24000)]  # release layout, 4 blocks


def media_blocks(h: int = 64, w: int = 96) -> list[MediaBlock]:
    g = torch.Generator().manual_seed(0)
    timing = DecodeTiming(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    out, f0, s0 = [], 0, 0
    for k, (nf, ns) in enumerate(SIZES):
        frames = torch.randint(0, 256, (nf, h, w, 3), dtype=torch.uint8, generator=g)
        audio = 0.2 * torch.sin(torch.arange(s0, s0 + ns) * (2 * torch.pi * 440 / 24000)).repeat(2, 1)
        out.append(MediaBlock(k, frames, audio.float(), f0, s0, 24, 24000, timing))
        f0, s0 = f0 + nf, s0 + ns
    return out


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def test_split_boxes_keeps_incomplete_tail() -> None:
    data = box(b"ftyp", b"abcd") + box(b"moov", b"x" * 10)
    large = struct.pack(">I4sQ", 1, b"mdat", 16 + 3) + b"xyz"
    boxes, rest = split_boxes(data + large + data[:5])
    assert [k for k, _ in boxes] == ["ftyp", "moov", "mdat"] and rest == data[:5]
    assert b"".join(b for _, b in boxes) == data + large
    with pytest.raises(InputError):
        split_boxes(struct.pack(">I4s", 4, b"bad!"))


def test_av_writer_mp4_wav_and_one_fragment_per_block(tmp_path: Path) -> None:
    blocks = media_blocks()
    with AvWriter(96, 64, mp4=tmp_path / "a.mp4", wav=tmp_path / "a.wav", fragments=tmp_path / "frags") as writer:
        for b in blocks:
            writer.write(b)
            # fragment k is complete once block k+1's key frame is muxed
            assert len(writer.fragment_files.fragments) >= b.index - 1
    summary = writer.summary()
    assert summary["frames"] == 97 and summary["samples"] == 96240 and summary["blocks"] == 4
    assert summary["fragment_files"] == ["init.mp4"] + [f"frag_{i:05d}.m4s" for i in range(4)]

    with av.open(str(tmp_path / "a.mp4")) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.name, a.codec_context.name) == ("h264", "aac")
        assert (v.width, v.height, v.average_rate, a.sample_rate, a.channels) == (96, 64, 24, 24000, 2)
        keyframes = [p.pts for p in c.demux(v) if p.size and p.is_keyframe]
    assert len(keyframes) == 4  # one per block (25, then 24 frames), none in between
    with wave.open(str(tmp_path / "a.wav")) as w:
        assert (w.getnframes(), w.getnchannels(), w.getframerate()) == (96240, 2, 24000)

    frags = tmp_path / "frags"
    init = (frags / "init.mp4").read_bytes()
    assert [k for k, _ in split_boxes(init)[0]] == ["ftyp", "moov"]
    parts = [(frags / f"frag_{i:05d}.m4s").read_bytes() for i in range(4)]
    for part in parts:
        kinds = [k for k, _ in split_boxes(part)[0]]
        assert kinds == ["moof", "mdat"] and len(part) > 1000
    with av.open(io.BytesIO(init + b"".join(parts))) as c:
        assert sum(1 for _ in c.decode(video=0)) == 97
    with av.open(io.BytesIO(init + b"".join(parts))) as c:
        assert 96240 <= sum(f.samples for f in c.decode(audio=0)) <= 96240 + 2048  # AAC frame padding


def test_av_writer_rejects_gaps_and_needs_an_output(tmp_path: Path) -> None:
    blocks = media_blocks()
    with pytest.raises(InputError):
        AvWriter(96, 64)
    writer = AvWriter(96, 64, wav=tmp_path / "a.wav")
    writer.write(blocks[0])
    with pytest.raises(InputError, match="expected 25 / 24240"):
        writer.write(blocks[2])
    writer.close()
    with pytest.raises(InputError, match="closed"):
        writer.write(blocks[1])
