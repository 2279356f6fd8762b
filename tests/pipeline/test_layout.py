import pytest
import torch

from omniforcing_rt.errors import ConfigError
from omniforcing_rt.pipeline.layout import BlockLayout, LayoutKind

TPF = 384  # 512x768


def _ranges(layout):
    v = [(b.video_start, b.video_start + b.video_frames) for b in layout.blocks]
    a = [(b.audio_start, b.audio_start + b.audio_frames) for b in layout.blocks]
    return v, a


def test_release_5s_table():
    lay = BlockLayout.for_seconds("release", 5.0, TPF)
    assert lay.kind is LayoutKind.RELEASE and lay.num_blocks == 5
    v, a = _ranges(lay)
    assert v == [(0, 4), (4, 7), (7, 10), (10, 13), (13, 16)]
    assert a == [(0, 26), (26, 51), (51, 76), (76, 101), (101, 126)]
    assert (lay.video_latent_frames, lay.audio_latent_frames) == (16, 126)
    assert lay.pixel_frames == 121
    b0, b1 = lay.block(0), lay.block(1)
    assert (b0.video_tokens, b1.video_tokens) == (4 * TPF, 3 * TPF)
    assert (b0.pixel_frames, b1.pixel_frames) == (25, 24)
    assert (b0.audio_samples, b1.audio_samples) == (24_240, 24_000)
    assert b1.pixel_frame_start == 25 and b1.video_token_start == 4 * TPF
    assert lay.video_frame_block_ids().tolist() == [0] * 4 + [1] * 3 + [2] * 3 + [3] * 3 + [4] * 3
    assert BlockLayout.for_video_latents("release", 16, TPF) == lay


def test_paper_5s_table():
    lay = BlockLayout.for_seconds("paper", 5.0, TPF)
    assert lay.num_blocks == 6
    v, a = _ranges(lay)
    assert v == [(0, 1), (1, 4), (4, 7), (7, 10), (10, 13), (13, 16)]
    assert a == [(0, 1), (1, 26), (26, 51), (51, 76), (76, 101), (101, 126)]
    assert lay.block(0).pixel_frames == 1 and lay.block(0).audio_samples == 240


def test_valid_durations_and_error_lists_them():
    rel = [BlockLayout.for_seconds("release", s, 4).num_blocks for s in (1.0, 2.0, 3.0, 10.0)]
    assert rel == [1, 2, 3, 10]
    assert BlockLayout.for_seconds("paper", 1 / 24, 4).num_blocks == 1
    with pytest.raises(ConfigError) as ei:
        BlockLayout.for_seconds("release", 2.5, 4)
    text = "\n".join(ei.value.problems)
    assert "1.042" in text and "2.042" in text and "3.042" in text
    with pytest.raises(ConfigError) as ei:
        BlockLayout.for_video_latents("release", 15, 4)
    assert "4, 7, 10, 13, 16" in "\n".join(ei.value.problems)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError):
            BlockLayout.for_seconds("release", bad, 4)
    with pytest.raises(ConfigError):
        BlockLayout.create("diagonal", 3, 4)
    with pytest.raises(ConfigError) as ei:
        BlockLayout.create("release", 0, 0, block_frames=2)
    assert len(ei.value.problems) == 3


def test_sinks_in_audio_token_ids():
    lay = BlockLayout.create("paper", 3, 4, audio_sink_tokens=16)
    ids = lay.audio_token_block_ids()
    assert ids.dtype == torch.int64
    assert ids[:17].tolist() == [0] * 17 and ids[17:42].tolist() == [1] * 25
    assert ids.numel() == 16 + lay.audio_latent_frames
    b0, b1 = lay.block(0), lay.block(1)
    assert (b0.audio_tokens, b0.sink_tokens, b0.audio_token_start) == (17, 16, 0)
    assert (b1.audio_tokens, b1.sink_tokens, b1.audio_token_start, b1.audio_start) == (25, 0, 17, 1)
    assert lay.audio_latent_frames == 51
