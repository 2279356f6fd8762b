"""Video encoder mirroring the LTX-2 video VAE decoder: frames [B, 3, F, H, W] -> [B, C, F', H/32, W/32].

The teacher of issue #10 is trained on latents, so the world needs an encoder whose latents the
existing :class:`~omniforcing_rt.media.video_vae.VideoDecoder` decodes. Like the LTX encoder it
works by space-to-depth downsampling with the decoder's own building blocks
(:class:`CausalConv3d` with reflect spatial padding, :class:`ResnetBlock3D` with PixelNorm), and
it has the same time geometry: frame 0 is replicated 7 times in front (the causal first frame),
so ``F = 8 (F' - 1) + 1`` frames give ``F'`` latents and latent 0 encodes frame 0 alone.

Differences from the LTX-2 encoder (kept small to train on one CPU thread): time and space are
folded by 8 in one space-to-depth step and a 1x1x1 projection (LTX interleaves res stacks with
(2, 2, 2) folds and starts with a patch-4 patchify), there are two (1, 2, 2) folds instead of
the LTX block list, no mid attention, and the output is a deterministic latent (the LTX encoder
outputs mean and log-variance; here the regulariser is a fixed-variance Gaussian, see
:mod:`~omniforcing_rt.world_models.train_media`). ``latent_mean`` / ``latent_std`` buffers map the
raw latent to the normalised one the decoder's ``per_channel_statistics`` undo.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from omniforcing_rt.errors import ConfigError, InputError
from omniforcing_rt.media.normalization import VIDEO_PIXEL_NORM_EPS, pixel_norm
from omniforcing_rt.media.video_vae import CausalConv3d, ResnetBlock3D

__all__ = ["VideoEncoder", "VideoEncoderConfig", "space_to_depth"]


@dataclass(frozen=True, kw_only=True)
class VideoEncoderConfig:
    """Size of the world video encoder (its geometry is fixed to the LTX-2 decoder's: 8 x 32 x 32)."""

    latent_channels: int = 128
    """Output latent channels (the transformer's ``in_channels``)."""
    hidden: int = 128
    """Width of every hidden layer."""
    res_blocks: int = 1
    """Res blocks after each of the two spatial folds."""

    def __post_init__(self) -> None:
        problems = [f"{n} must be >= 1, got {getattr(self, n)}" for n in ("latent_channels", "hidden")
                    if getattr(self, n) < 1]  # fmt: skip
        if self.res_blocks < 0:
            problems.append(f"res_blocks must be >= 0, got {self.res_blocks}")
        if problems:
            raise ConfigError("invalid video encoder config", problems)

    def to_dict(self) -> dict[str, int]:
        """JSON form (stored in the checkpoint metadata)."""
        return {"latent_channels": self.latent_channels, "hidden": self.hidden, "res_blocks": self.res_blocks}


def space_to_depth(x: torch.Tensor, stride: tuple[int, int, int]) -> torch.Tensor:
    """``b c (d p1) (h p2) (w p3) -> b (c p1 p2 p3) d h w``: the inverse of the decoder's depth_to_space."""
    b, c, d, h, w = x.shape
    p1, p2, p3 = stride
    x = x.view(b, c, d // p1, p1, h // p2, p2, w // p3, p3)
    x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)
    return x.reshape(b, c * p1 * p2 * p3, d // p1, h // p2, w // p3)


class VideoEncoder(nn.Module):
    """Frames in [-1, 1] -> normalised latents for :class:`~omniforcing_rt.media.video_vae.VideoDecoder`."""

    TIME = 8
    SPACE = 32

    def __init__(self, config: VideoEncoderConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        conv = dict(causal=False, spatial_padding_mode="reflect")
        self.proj_in = nn.Conv3d(3 * 8 * 8 * 8, h, 1)
        self.down1 = CausalConv3d(4 * h, h, **conv)
        self.res1 = nn.ModuleList(ResnetBlock3D(h, h, **conv) for _ in range(config.res_blocks))
        self.down2 = CausalConv3d(4 * h, h, **conv)
        self.res2 = nn.ModuleList(ResnetBlock3D(h, h, **conv) for _ in range(config.res_blocks))
        self.conv_out = CausalConv3d(h, config.latent_channels, **conv)
        self.register_buffer("latent_mean", torch.zeros(config.latent_channels))
        self.register_buffer("latent_std", torch.ones(config.latent_channels))

    def raw(self, video: torch.Tensor) -> torch.Tensor:
        """[B, 3, 8k + 1, 32 h, 32 w] in [-1, 1] -> un-normalised latent [B, C, k + 1, h, w]."""
        b, c, f, hh, ww = video.shape
        if video.ndim != 5 or c != 3 or (f - 1) % self.TIME or hh % self.SPACE or ww % self.SPACE:
            raise InputError(f"video must be [B, 3, 8k + 1, 32h, 32w], got {tuple(video.shape)}")
        x = torch.cat([video[:, :, :1].expand(-1, -1, self.TIME - 1, -1, -1), video], dim=2)
        x = F.silu(self.proj_in(space_to_depth(x, (8, 8, 8))))
        x = self.down1(space_to_depth(x, (1, 2, 2)))
        for block in self.res1:
            x = block(x)
        x = self.down2(space_to_depth(x, (1, 2, 2)))
        for block in self.res2:
            x = block(x)
        return self.conv_out(F.silu(pixel_norm(x, VIDEO_PIXEL_NORM_EPS)))

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw latent -> the decoder's normalised latent space (per channel)."""
        mean = self.get_buffer("latent_mean").view(1, -1, 1, 1, 1)
        std = self.get_buffer("latent_std").view(1, -1, 1, 1, 1)
        return (raw - mean) / std

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """[B, 3, F, H, W] in [-1, 1] -> normalised latent [B, C, (F - 1) / 8 + 1, H / 32, W / 32]."""
        return self.normalize(self.raw(video))
