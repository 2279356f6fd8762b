"""The official tiled decode of the video VAE decoder (ltx-core ``VideoDecoder.tiled_decode``).

Tiles are overlapping latent boxes; each is decoded as an independent clip with the normal
forward, weighted by a separable trapezoid blend mask and accumulated (spec-media.md 6.1):

- temporal split (S = size/8, O = overlap/8 latents): ``count = (N + S - 2O - 1) // (S - O)``
  tiles starting every S - O latents, the last one ending at N; every start but the first moves
  one latent earlier and its left ramp grows by one. A tile of latents [b, e) covers output frames
  [8b, 1 + 8(e - 1)); its left ramp starts at weight 0, so the frame produced by the tile's
  "first latent" (a single frame landing on 8b) never contributes;
- spatial split (optional): the same interval rule without the shift, tile size scaled to the
  aspect ratio, ramps excluding both 0 and 1;
- tiles are grouped by temporal slice; when group g+1 is decoded its overlap is added into group
  g's buffer, group g's frames before group g+1's start are emitted as ``sum / max(w, 1e-8)``, and
  the last group is emitted whole.

The result is *not* equal to the full decode: every tile is a separate clip whose edges see
replicate padding. Deviation from ltx-core: the latent->pixel factors are the decoder's own
(:attr:`VideoDecoderConfig.temporal_factor` / ``spatial_factor``) rather than the literals 8 and
32; they coincide for every LTX-2 decoder.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from omniforcing_rt.errors import ConfigError, InputError
from omniforcing_rt.media.video_vae import VideoDecoder

__all__ = [
    "DimensionIntervals",
    "SpatialTilingConfig",
    "TemporalTilingConfig",
    "Tile",
    "TilingConfig",
    "plan_tiles",
    "split_spatial",
    "split_temporal",
    "tiled_decode",
    "trapezoid_mask",
]


@dataclass(frozen=True, kw_only=True)
class TemporalTilingConfig:
    """Temporal tiles, in pixel frames (ltx-core ``TemporalTilingConfig``)."""

    tile_size_in_frames: int
    """Frames per tile: a multiple of 8, at least 16."""
    tile_overlap_in_frames: int = 0
    """Frames shared by neighbouring tiles: a multiple of 8, less than the tile size."""

    def __post_init__(self) -> None:
        s, o = self.tile_size_in_frames, self.tile_overlap_in_frames
        problems = []
        if s < 16 or s % 8:
            problems.append(f"tile_size_in_frames must be a multiple of 8 and >= 16, got {s}")
        if o < 0 or o % 8 or o >= s:
            problems.append(f"tile_overlap_in_frames must be a multiple of 8 in [0, size), got {o}")
        if problems:
            raise ConfigError("invalid temporal tiling config", problems)


@dataclass(frozen=True, kw_only=True)
class SpatialTilingConfig:
    """Spatial tiles, in pixels (ltx-core ``SpatialTilingConfig``)."""

    tile_size_in_pixels: int
    """Pixels per tile side: a multiple of 32, at least 64."""
    tile_overlap_in_pixels: int = 0
    """Pixels shared by neighbouring tiles: a multiple of 32, less than the tile size."""

    def __post_init__(self) -> None:
        s, o = self.tile_size_in_pixels, self.tile_overlap_in_pixels
        problems = []
        if s < 64 or s % 32:
            problems.append(f"tile_size_in_pixels must be a multiple of 32 and >= 64, got {s}")
        if o < 0 or o % 32 or o >= s:
            problems.append(f"tile_overlap_in_pixels must be a multiple of 32 in [0, size), got {o}")
        if problems:
            raise ConfigError("invalid spatial tiling config", problems)


@dataclass(frozen=True, kw_only=True)
class TilingConfig:
    """Which axes are tiled. ``TilingConfig()`` tiles nothing (one tile = the full decode)."""

    spatial: SpatialTilingConfig | None = None
    """Spatial tiling, or None."""
    temporal: TemporalTilingConfig | None = None
    """Temporal tiling, or None."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TilingConfig:
        """From a flat dict of the four ltx-core field names (a media fixture's ``tiling.config``).

        Raises:
            ConfigError: unknown keys or invalid values.
        """
        known = {"tile_size_in_frames", "tile_overlap_in_frames", "tile_size_in_pixels", "tile_overlap_in_pixels"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError("invalid tiling config", [f"unknown tiling keys {unknown}"])
        temporal = spatial = None
        if "tile_size_in_frames" in d:
            temporal = TemporalTilingConfig(
                tile_size_in_frames=d["tile_size_in_frames"], tile_overlap_in_frames=d.get("tile_overlap_in_frames", 0)
            )
        if "tile_size_in_pixels" in d:
            spatial = SpatialTilingConfig(
                tile_size_in_pixels=d["tile_size_in_pixels"], tile_overlap_in_pixels=d.get("tile_overlap_in_pixels", 0)
            )
        return cls(spatial=spatial, temporal=temporal)


@dataclass(frozen=True)
class DimensionIntervals:
    """Latent intervals [starts[i], ends[i]) of one axis with their blend ramp lengths."""

    starts: list[int]
    """First latent of each interval."""
    ends: list[int]
    """One past the last latent of each interval."""
    left_ramps: list[int]
    """Left blend ramp of each interval, in latents."""
    right_ramps: list[int]
    """Right blend ramp of each interval, in latents."""


@dataclass(frozen=True)
class Tile:
    """One tile: where to read it (latent T, H, W slices), where it lands, and its blend mask."""

    latent_slices: tuple[slice, slice, slice]
    """Latent (T, H, W) slices."""
    output_slices: tuple[slice, slice, slice]
    """Output (T, H, W) slices, in pixels and frames."""
    mask: torch.Tensor
    """[1, 1, T_out | 1, H_out | 1, W_out | 1] separable blend weights."""


def split_spatial(length: int, size: int, overlap: int) -> DimensionIntervals:
    """ltx-core ``split_in_spatial``: tiles of ``size`` latents every ``size - overlap``."""
    if length <= size:
        return DimensionIntervals([0], [length], [0], [0])
    count = (length + size - 2 * overlap - 1) // (size - overlap)
    starts = [i * (size - overlap) for i in range(count)]
    ends = [s + size for s in starts]
    ends[-1] = length
    return DimensionIntervals(starts, ends, [0] + [overlap] * (count - 1), [overlap] * (count - 1) + [0])


def split_temporal(length: int, size: int, overlap: int) -> DimensionIntervals:
    """ltx-core ``split_in_temporal``: the spatial rule with later starts one latent earlier."""
    if length <= size:
        return DimensionIntervals([0], [length], [0], [0])
    iv = split_spatial(length, size, overlap)
    starts = iv.starts[:1] + [s - 1 for s in iv.starts[1:]]
    left = iv.left_ramps[:1] + [r + 1 for r in iv.left_ramps[1:]]
    return DimensionIntervals(starts, iv.ends, left, iv.right_ramps)


def trapezoid_mask(length: int, ramp_left: int, ramp_right: int, left_starts_from_0: bool) -> torch.Tensor:
    """ltx-core ``compute_trapezoidal_mask_1d``: [length] weights with linear ramps.

    The left ramp is ``0, 1/R, ...`` when ``left_starts_from_0`` else ``1/(R+1), ...``; the right
    ramp is ``R/(R+1) ... 1/(R+1)`` (neither 1 nor 0).
    """
    if length <= 0:
        raise InputError("blend mask length must be positive")
    ramp_left = max(0, min(ramp_left, length))
    ramp_right = max(0, min(ramp_right, length))
    mask = torch.ones(length)
    if ramp_left > 0:
        fade_in = torch.linspace(0.0, 1.0, ramp_left + (1 if left_starts_from_0 else 2))[:-1]
        mask[:ramp_left] *= fade_in if left_starts_from_0 else fade_in[1:]
    if ramp_right > 0:
        mask[-ramp_right:] *= torch.linspace(1.0, 0.0, steps=ramp_right + 2)[1:-1]
    return mask.clamp_(0, 1)


def _axis_intervals(
    latent_shape: tuple[int, int, int], tiling: TilingConfig, time_scale: int, space_scale: int
) -> list[DimensionIntervals | None]:
    """Per axis (T, H, W): the split, or None when the axis is not tiled."""
    out: list[DimensionIntervals | None] = [None, None, None]
    if tiling.temporal is not None:
        size = tiling.temporal.tile_size_in_frames // time_scale
        overlap = tiling.temporal.tile_overlap_in_frames // time_scale
        out[0] = split_temporal(latent_shape[0], size, overlap)
    if tiling.spatial is not None:
        long_side = max(latent_shape[1], latent_shape[2])
        size = tiling.spatial.tile_size_in_pixels // space_scale
        overlap = tiling.spatial.tile_overlap_in_pixels // space_scale
        for axis in (1, 2):
            # round() is Python's banker's rounding, as in ltx-core.
            tile = max(max(2, overlap + 1), round(size * latent_shape[axis] / long_side))
            out[axis] = split_spatial(latent_shape[axis], tile, overlap)
    return out


def _axis_tiles(
    iv: DimensionIntervals | None, length: int, axis: int, scale: int, full_out: int
) -> list[tuple[slice, slice, torch.Tensor | None]]:
    """(latent slice, output slice, 1-D mask or None) per interval of one axis."""
    if iv is None:
        return [(slice(0, length), slice(0, full_out), None)]
    tiles = []
    for b, e, left, right in zip(iv.starts, iv.ends, iv.left_ramps, iv.right_ramps):
        if axis == 0:
            start, stop = b * scale, 1 + (e - 1) * scale
            mask = trapezoid_mask(stop - start, 1 + (left - 1) * scale, right * scale, True)
        else:
            start, stop = b * scale, e * scale
            mask = trapezoid_mask(stop - start, left * scale, right * scale, False)
        tiles.append((slice(b, e), slice(start, stop), mask))
    return tiles


def plan_tiles(
    latent_shape: tuple[int, int, int], tiling: TilingConfig, time_scale: int, space_scale: int
) -> list[Tile]:
    """All tiles of a latent of (T, H, W) latent cells, time-major as in ltx-core.

    Args:
        latent_shape: (F', H', W').
        tiling: which axes to tile.
        time_scale: frames per latent after the first (8 for LTX-2).
        space_scale: pixels per latent cell (32 for LTX-2).
    """
    t, h, w = latent_shape
    full = ((t - 1) * time_scale + 1, h * space_scale, w * space_scale)
    scales = (time_scale, space_scale, space_scale)
    per_axis = [
        _axis_tiles(iv, latent_shape[a], a, scales[a], full[a])
        for a, iv in enumerate(_axis_intervals(latent_shape, tiling, time_scale, space_scale))
    ]
    tiles = []
    for (lt, ot, mt), (lh, oh, mh), (lw, ow, mw) in itertools.product(*per_axis):
        mask = torch.ones(1, 1, 1, 1, 1)
        for axis, m in enumerate((mt, mh, mw)):
            if m is not None:
                shape = [1, 1, 1, 1, 1]
                shape[2 + axis] = m.numel()
                mask = mask * m.view(shape)
        tiles.append(Tile((lt, lh, lw), (ot, oh, ow), mask))
    return tiles


def _decode_group(
    decoder: VideoDecoder, latent: torch.Tensor, group: list[Tile], full_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode the tiles sharing one temporal slice into (weighted sum, weights) buffers."""
    t_slice = group[0].output_slices[0]
    b = latent.shape[0]
    buffer = latent.new_zeros(b, decoder.config.out_channels, t_slice.stop - t_slice.start, *full_hw)
    weights = torch.zeros_like(buffer)
    for tile in group:
        lt, lh, lw = tile.latent_slices
        decoded = decoder(latent[:, :, lt, lh, lw])
        mask = tile.mask.to(buffer)
        offset = tile.output_slices[0].start - t_slice.start
        expected = tile.output_slices[0].stop - tile.output_slices[0].start
        n = min(expected, decoded.shape[2], buffer.shape[2] - offset)
        where = (slice(None), slice(None), slice(offset, offset + n), tile.output_slices[1], tile.output_slices[2])
        mask = mask[:, :, :n] if mask.shape[2] > 1 else mask
        buffer[where] += decoded[:, :, :n] * mask
        weights[where] += mask
    return buffer, weights


def tiled_decode(decoder: VideoDecoder, latent: torch.Tensor, tiling: TilingConfig) -> Iterator[torch.Tensor]:
    """Decode ``latent`` [B, C, F', H', W'] tile by tile, yielding [B, 3, n_i, H, W] chunks in order.

    The chunks concatenate to the full clip length ``factor (F' - 1) + 1``.
    """
    cfg = decoder.config
    shape = (latent.shape[2], latent.shape[3], latent.shape[4])
    tiles = plan_tiles(shape, tiling, cfg.temporal_factor, cfg.spatial_factor)
    full_hw = (shape[1] * cfg.spatial_factor, shape[2] * cfg.spatial_factor)
    groups = [
        list(g) for _, g in itertools.groupby(tiles, key=lambda t: (t.output_slices[0].start, t.output_slices[0].stop))
    ]
    prev: tuple[torch.Tensor, torch.Tensor, slice] | None = None
    for group in groups:
        t_slice = group[0].output_slices[0]
        buffer, weights = _decode_group(decoder, latent, group, full_hw)
        if prev is not None:
            p_buf, p_w, p_slice = prev
            if p_slice.stop > t_slice.start:
                n = p_slice.stop - t_slice.start
                off = t_slice.start - p_slice.start
                p_buf[:, :, off:] += buffer[:, :, :n]
                p_w[:, :, off:] += weights[:, :, :n]
                buffer[:, :, :n] = p_buf[:, :, off:]
                weights[:, :, :n] = p_w[:, :, off:]
            yield (p_buf / p_w.clamp(min=1e-8))[:, :, : t_slice.start - p_slice.start]
        prev = (buffer, weights, t_slice)
    if prev is not None:
        yield prev[0] / prev[1].clamp(min=1e-8)
