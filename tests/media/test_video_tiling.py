"""Tiled decode beyond the fixture: tile planning rules, spatial tiles, config validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from omniforcing_rt.errors import ConfigError
from omniforcing_rt.media import weights as mw
from omniforcing_rt.media.video_tiling import (
    SpatialTilingConfig,
    TemporalTilingConfig,
    TilingConfig,
    plan_tiles,
    split_temporal,
    tiled_decode,
    trapezoid_mask,
)


def test_split_temporal_default_config_16_latents() -> None:
    """Spec 6.1: S = 8, O = 3, N = 16 -> tiles [0,8), [4,13), [9,16) -> output chunks 32, 40, 49."""
    iv = split_temporal(16, 8, 3)
    assert (iv.starts, iv.ends, iv.left_ramps, iv.right_ramps) == ([0, 4, 9], [8, 13, 16], [0, 4, 4], [3, 3, 0])
    tiles = plan_tiles(
        (16, 2, 2),
        TilingConfig(temporal=TemporalTilingConfig(tile_size_in_frames=64, tile_overlap_in_frames=24)),
        8,
        32,
    )
    assert [(t.output_slices[0].start, t.output_slices[0].stop) for t in tiles] == [(0, 57), (32, 97), (72, 121)]
    assert all(float(t.mask.flatten()[0]) == 0.0 for t in tiles[1:])  # a tile's "first latent" frame never counts


def test_trapezoid_mask_ramps() -> None:
    torch.testing.assert_close(trapezoid_mask(6, 3, 2, True), torch.tensor([0, 1 / 3, 2 / 3, 1, 2 / 3, 1 / 3]))
    torch.testing.assert_close(trapezoid_mask(4, 1, 0, False), torch.tensor([0.5, 1, 1, 1]))


@torch.no_grad()
def test_single_spatial_tile_equals_full_decode(fixture_weights: Path) -> None:
    dec = mw.load_video_decoder(fixture_weights)
    lat = torch.randn(1, 4, 2, 2, 2, generator=torch.Generator().manual_seed(0))
    tiling = TilingConfig(spatial=SpatialTilingConfig(tile_size_in_pixels=64))
    chunks = list(tiled_decode(dec, lat, tiling))
    assert len(chunks) == 1
    torch.testing.assert_close(chunks[0], dec(lat), atol=1e-6, rtol=0)


@torch.no_grad()
def test_spatial_and_temporal_tiles(fixture_weights: Path) -> None:
    dec = mw.load_video_decoder(fixture_weights)
    lat = torch.randn(1, 4, 3, 2, 3, generator=torch.Generator().manual_seed(1))  # non-square grid
    tiling = TilingConfig.from_dict(
        {
            "tile_size_in_frames": 16,
            "tile_overlap_in_frames": 8,
            "tile_size_in_pixels": 64,
            "tile_overlap_in_pixels": 32,
        }
    )
    tiles = plan_tiles((3, 2, 3), tiling, 8, 32)
    assert len(tiles) == 2 * 1 * 2  # temporal x height x width
    assert [(t.output_slices[2].start, t.output_slices[2].stop) for t in tiles[:2]] == [(0, 64), (32, 96)]
    out = torch.cat(list(tiled_decode(dec, lat, tiling)), dim=2)
    full = dec(lat)
    assert out.shape == full.shape == (1, 3, 17, 64, 96)
    assert torch.isfinite(out).all()
    assert (out - full).abs().mean() < full.abs().mean()  # an approximation of the full decode


def test_tiling_config_validation() -> None:
    with pytest.raises(ConfigError):
        TemporalTilingConfig(tile_size_in_frames=12)
    with pytest.raises(ConfigError):
        SpatialTilingConfig(tile_size_in_pixels=64, tile_overlap_in_pixels=64)
    with pytest.raises(ConfigError, match="unknown tiling keys"):
        TilingConfig.from_dict({"tile_size_in_frames": 16, "tile_overlap": 8})
